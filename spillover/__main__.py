from spillover.cli import main

raise SystemExit(main())
