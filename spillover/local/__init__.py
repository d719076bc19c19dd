"""The local stack: Triton pools on 127.0.0.1 behind a local HAProxy gateway."""
