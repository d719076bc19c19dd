#!/bin/sh
# The NVIDIA container toolkit on a GPU machine, at a pinned version, run as root over SSH by
# infra/components/private_cluster.py before k3s (k3s finds nvidia-container-runtime when it
# starts and adds it to its containerd config). The NVIDIA driver must already be installed.
#   install    from NVIDIA's signed apt/dnf repository, or --artefacts DIR's nvidia/ packages
#              (air-gapped). A re-run at the installed version changes nothing.
#   uninstall  removes the packages (and the repository entry this script added).
# Options before the action: --dry-run, --os-release FILE (as in k3s-node.sh).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

REPO=https://nvidia.github.io/libnvidia-container
KEYRING=/usr/share/keyrings/nvidia-container-toolkit-keyring.gpg
APT_LIST=/etc/apt/sources.list.d/nvidia-container-toolkit.list
DNF_REPO=/etc/yum.repos.d/nvidia-container-toolkit.repo
PACKAGES="nvidia-container-toolkit nvidia-container-toolkit-base libnvidia-container-tools libnvidia-container1"

while [ $# -gt 0 ]; do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    --os-release) OS_RELEASE=$2; shift ;;
    *) break ;;
    esac
    shift
done
[ $# -gt 0 ] || die "usage: nvidia-toolkit.sh [--dry-run] [--os-release FILE] install|uninstall [--version V] [--artefacts DIR]"
ACTION=$1
shift
VERSION="" ARTEFACTS=""
while [ $# -gt 0 ]; do
    case $1 in
    --version) VERSION=$2; shift ;;
    --artefacts) ARTEFACTS=$2; shift ;;
    --script-digest) shift ;;
    *) die "unknown option $1" ;;
    esac
    shift
done

installed_version() {
    if [ "$OS_FAMILY" = debian ]; then
        dpkg-query -W -f='${Version}' nvidia-container-toolkit 2>/dev/null || true
    else
        rpm -q --qf '%{VERSION}-%{RELEASE}' nvidia-container-toolkit 2>/dev/null || true
    fi
}

# "pkg=1.17.8-1 ..." for apt, "pkg-1.17.8-1 ..." for dnf: every package at the pinned version.
pinned() {
    for package in $PACKAGES; do
        printf '%s%s%s ' "$package" "$1" "$VERSION"
    done
}

install_toolkit() {
    [ -n "$VERSION" ] || die "install needs --version"
    detect_os
    if [ "$DRY_RUN" -eq 0 ] && ! command -v nvidia-smi >/dev/null; then
        die "no NVIDIA driver here (nvidia-smi not found): install the driver, then re-run pulumi up"
    fi
    current=$(installed_version)
    case $current in
    "$VERSION" | "$VERSION"-*)
        say "nvidia-container-toolkit $current already installed; nothing to do"
        return 0
        ;;
    esac
    if [ -n "$ARTEFACTS" ]; then
        if [ "$OS_FAMILY" = debian ]; then
            run apt-get install -y --no-install-recommends --allow-downgrades "$ARTEFACTS"/nvidia/*.deb
        else
            run dnf install -y --disablerepo='*' "$ARTEFACTS"/nvidia/*.rpm
        fi
        return 0
    fi
    if [ "$OS_FAMILY" = debian ]; then
        run sh -c "curl -fsSL $REPO/gpgkey | gpg --dearmor --yes -o $KEYRING"
        curl_list="curl -fsSL $REPO/stable/deb/nvidia-container-toolkit.list"
        signed="s#deb https://#deb [signed-by=$KEYRING] https://#g"
        run sh -c "$curl_list | sed '$signed' > $APT_LIST"
        run apt-get update -q
        # shellcheck disable=SC2046 # one word per package
        run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
            --allow-downgrades $(pinned '=')
    else
        run sh -c "curl -fsSL $REPO/stable/rpm/nvidia-container-toolkit.repo > $DNF_REPO"
        # shellcheck disable=SC2046 # one word per package
        run dnf install -y $(pinned '-')
    fi
}

uninstall_toolkit() {
    detect_os
    if [ "$OS_FAMILY" = debian ]; then
        # shellcheck disable=SC2086 # one word per package
        run env DEBIAN_FRONTEND=noninteractive apt-get remove -y $PACKAGES
        run rm -f "$APT_LIST" "$KEYRING"
    else
        # shellcheck disable=SC2086 # one word per package
        run dnf remove -y $PACKAGES
        run rm -f "$DNF_REPO"
    fi
}

case $ACTION in
install) install_toolkit ;;
uninstall) uninstall_toolkit ;;
*) die "unknown action $ACTION" ;;
esac
