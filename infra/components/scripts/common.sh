# Sourced by the bootstrap scripts: dry-run, the OS release, checksums. POSIX sh.
# shellcheck shell=sh
# CHANGED and the OS_* variables are read by the scripts that source this one.
# shellcheck disable=SC2034

DRY_RUN=0
OS_RELEASE=/etc/os-release

die() {
    echo "error: $*" >&2
    exit 1
}

say() {
    echo "$*"
}

# Runs a command, or in a dry run prints it: the one place a script changes the machine.
run() {
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "would run: $*"
    else
        "$@"
    fi
}

# Writes stdin to a file with a mode, unless it already holds exactly that (so a re-run changes
# nothing); sets CHANGED=1 when it wrote. Secret content (mode 600) is never printed, even in a
# dry run. Not in a pipeline (a subshell would lose CHANGED): feed it a here-document.
CHANGED=0
write_file() {
    path=$1
    mode=$2
    staged=$(mktemp)
    cat >"$staged"
    if [ -f "$path" ] && cmp -s "$staged" "$path"; then
        rm -f "$staged"
        say "unchanged: $path"
        return 0
    fi
    if [ "$DRY_RUN" -eq 1 ]; then
        echo "would write $path (mode $mode):"
        if [ "$mode" = 600 ]; then
            echo "  <secret, $(wc -c <"$staged") bytes>"
        else
            sed 's/^/  /' "$staged"
        fi
        rm -f "$staged"
    else
        mkdir -p "$(dirname "$path")"
        chmod "$mode" "$staged"
        mv "$staged" "$path"
        say "wrote $path"
    fi
    CHANGED=1
}

# Reads ID, ID_LIKE and VERSION_ID of the OS release into OS_ID, OS_FAMILY and OS_VERSION.
# OS_FAMILY is debian (apt) or rhel (dnf); anything else is refused by name.
detect_os() {
    [ -r "$OS_RELEASE" ] || die "cannot read $OS_RELEASE"
    OS_ID=$(sed -n 's/^ID="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$OS_RELEASE")
    OS_LIKE=$(sed -n 's/^ID_LIKE="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$OS_RELEASE")
    OS_VERSION=$(sed -n 's/^VERSION_ID="\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$OS_RELEASE")
    case " $OS_ID $OS_LIKE " in
    *" debian "* | *" ubuntu "*) OS_FAMILY=debian ;;
    *" rhel "* | *" fedora "* | *" centos "*) OS_FAMILY=rhel ;;
    *) die "unsupported OS release: ID=$OS_ID (supported: Ubuntu, Debian, RHEL, Rocky, AlmaLinux)" ;;
    esac
    say "os: $OS_ID $OS_VERSION ($OS_FAMILY family)"
}

# Fails unless the file's sha256 is the pinned one; a dry run checks it when the file exists.
verify_sha256() {
    file=$1
    expected=$2
    if [ "$DRY_RUN" -eq 1 ] && [ ! -f "$file" ]; then
        echo "would verify sha256 of $file is $expected"
        return 0
    fi
    actual=$(sha256sum "$file" | cut -d' ' -f1)
    [ "$actual" = "$expected" ] || die "$file has sha256 $actual, expected $expected (pinned in the stack config)"
}

# Prints the sha256 of a file, or nothing when it does not exist.
sha256_of() {
    if [ -f "$1" ]; then sha256sum "$1" | cut -d' ' -f1; fi
}
