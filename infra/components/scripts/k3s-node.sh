#!/bin/sh
# One k3s node's life, run as root over SSH by infra/components/private_cluster.py:
#   install    binary and install.sh checked against pinned sha256s, /etc/rancher/k3s/config.yaml,
#              then k3s's own install.sh with nothing left to download. A re-run with the same
#              version and config changes nothing. A joining node reads the cluster token on stdin.
#   uninstall  k3s's uninstall script (server or agent), and what this script left.
#   label      (on the first server) wait for the node to be Ready, then set (--gpu) or clear the
#              --gpu-label Triton and the device plugin select and the --gpu-taint they tolerate.
#   drain      (on the first server) drain the node and delete its Node object.
# Options before the action: --dry-run prints every change instead of making it, and
# --os-release FILE reads another OS release (with --dry-run: what would happen on that OS).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
# shellcheck source-path=SCRIPTDIR source=common.sh
. "$HERE/common.sh"

BIN=/usr/local/bin/k3s
CONFIG=/etc/rancher/k3s/config.yaml
TOKEN_FILE=/etc/rancher/k3s/spillover-token
STATE=/usr/local/share/spillover
IMAGES_DIR=/var/lib/rancher/k3s/agent/images

usage() {
    die "usage: k3s-node.sh [--dry-run] [--os-release FILE] install|uninstall|label|drain [options]"
}

while [ $# -gt 0 ]; do
    case $1 in
    --dry-run) DRY_RUN=1 ;;
    --os-release) OS_RELEASE=$2; shift ;;
    *) break ;;
    esac
    shift
done
[ $# -gt 0 ] || usage
ACTION=$1
shift

ROLE="" NODE_NAME="" VERSION="" SHA256="" INSTALL_SHA256="" SERVER_URL="" CLUSTER_INIT=0
TLS_SAN="" GPU=0 OIDC_ISSUER="" ARTEFACTS="" IMAGES_SHA256="" GPU_LABEL="" GPU_TAINT=""
while [ $# -gt 0 ]; do
    case $1 in
    --role) ROLE=$2; shift ;;
    --node-name) NODE_NAME=$2; shift ;;
    --version) VERSION=$2; shift ;;
    --sha256) SHA256=$2; shift ;;
    --install-sha256) INSTALL_SHA256=$2; shift ;;
    --server-url) SERVER_URL=$2; shift ;;
    --cluster-init) CLUSTER_INIT=1 ;;
    --tls-san) TLS_SAN=$2; shift ;;
    --gpu) GPU=1 ;;
    --gpu-label) GPU_LABEL=$2; shift ;;
    --gpu-taint) GPU_TAINT=$2; shift ;;
    --oidc-issuer) OIDC_ISSUER=$2; shift ;;
    --artefacts) ARTEFACTS=$2; shift ;;
    --images-sha256) IMAGES_SHA256=$2; shift ;;
    --script-digest) shift ;; # changes the command when the scripts change, so it re-runs
    *) die "unknown option $1" ;;
    esac
    shift
done

# k3s's config file: the node's name, role, how it joins, and the NVIDIA runtime as containerd's
# default on GPU nodes, so pods get GPUs without a runtimeClassName.
node_config() {
    echo "node-name: $NODE_NAME"
    if [ -n "$SERVER_URL" ]; then
        echo "server: $SERVER_URL"
        echo "token-file: $TOKEN_FILE"
    fi
    if [ "$ROLE" = server ]; then
        [ "$CLUSTER_INIT" -eq 0 ] || echo "cluster-init: true"
        [ -z "$TLS_SAN" ] || printf 'tls-san:\n  - %s\n' "$TLS_SAN"
        echo "write-kubeconfig-mode: \"0600\""
        if [ -n "$OIDC_ISSUER" ]; then
            # The first issuer signs: AWS STS trusts it (privateOidcIssuerUrl). The in-cluster
            # one stays accepted for tokens minted before.
            echo "kube-apiserver-arg:"
            echo "  - service-account-issuer=$OIDC_ISSUER"
            echo "  - service-account-issuer=https://kubernetes.default.svc.cluster.local"
            echo "  - service-account-jwks-uri=$OIDC_ISSUER/openid/v1/jwks"
        fi
    fi
    [ "$GPU" -eq 0 ] || echo "default-runtime: nvidia"
}

# Puts a pinned artefact at $2: from the air-gapped directory, or downloaded; checked either way.
fetch() {
    name=$1 target=$2 url=$3 expected=$4
    if [ "$(sha256_of "$target")" = "$expected" ]; then
        say "unchanged: $target (sha256 matches)"
        return 0
    fi
    run mkdir -p "$(dirname "$target")"
    if [ -n "$ARTEFACTS" ]; then
        run cp "$ARTEFACTS/$name" "$target.part"
    else
        run curl -fsSL --retry 3 -o "$target.part" "$url"
    fi
    verify_sha256 "$target.part" "$expected"
    run mv "$target.part" "$target"
}

install_k3s() {
    [ "$ROLE" = server ] || [ "$ROLE" = agent ] || die "--role must be server or agent"
    for required in "$NODE_NAME" "$VERSION" "$SHA256" "$INSTALL_SHA256"; do
        [ -n "$required" ] || die "install needs --node-name, --version, --sha256 and --install-sha256"
    done
    [ "$ROLE" = server ] || [ -n "$SERVER_URL" ] || die "an agent needs --server-url"
    [ -z "$ARTEFACTS" ] || [ -n "$IMAGES_SHA256" ] || die "--artefacts needs --images-sha256"
    detect_os
    # The pinned sha256s are of the amd64 artefacts.
    [ "$(uname -m)" = x86_64 ] || die "this is $(uname -m); the pinned k3s artefacts are amd64"
    if [ "$GPU" -eq 1 ] && [ "$DRY_RUN" -eq 0 ] && ! command -v nvidia-container-runtime >/dev/null; then
        die "GPU node without nvidia-container-runtime: the toolkit step must run first"
    fi
    release="https://github.com/k3s-io/k3s/releases/download/$(echo "$VERSION" | sed 's/+/%2B/')"
    fetch k3s "$BIN" "$release/k3s" "$SHA256"
    run chmod 755 "$BIN"
    fetch install.sh "$STATE/k3s-install.sh" \
        "https://raw.githubusercontent.com/k3s-io/k3s/$(echo "$VERSION" | sed 's/+/%2B/')/install.sh" "$INSTALL_SHA256"
    if [ -n "$ARTEFACTS" ]; then
        # Air-gapped: k3s imports these images at start instead of pulling them.
        fetch k3s-airgap-images-amd64.tar.zst "$IMAGES_DIR/k3s-airgap-images-amd64.tar.zst" "" "$IMAGES_SHA256"
    fi
    CHANGED=0
    if [ -n "$SERVER_URL" ]; then
        # The cluster token arrives on stdin, never on a command line or in the environment.
        token=$(cat)
        [ -n "$token" ] || die "joining $SERVER_URL needs the cluster token on stdin"
        write_file "$TOKEN_FILE" 600 <<TOKEN
$token
TOKEN
    fi
    write_file "$CONFIG" 644 <<CONFIG
$(node_config)
CONFIG
    service=k3s
    [ "$ROLE" = server ] || service=k3s-agent
    installed=$("$BIN" --version 2>/dev/null | sed -n '1s/^k3s version \([^ ]*\).*/\1/p' || true)
    if [ "$CHANGED" -eq 0 ] && [ "$installed" = "$VERSION" ] && systemctl is-active --quiet "$service" 2>/dev/null; then
        say "k3s $VERSION $ROLE already running with this config; nothing to do"
        return 0
    fi
    skip_selinux=false
    # install.sh fetches the k3s-selinux policy from rpm.rancher.io on RHEL; air-gapped it cannot.
    [ -z "$ARTEFACTS" ] || skip_selinux=true
    run env INSTALL_K3S_SKIP_DOWNLOAD=true INSTALL_K3S_VERSION="$VERSION" \
        INSTALL_K3S_SKIP_SELINUX_RPM="$skip_selinux" INSTALL_K3S_EXEC="$ROLE" \
        sh "$STATE/k3s-install.sh"
}

uninstall_k3s() {
    for script in /usr/local/bin/k3s-uninstall.sh /usr/local/bin/k3s-agent-uninstall.sh; do
        if [ -x "$script" ]; then
            run "$script"
        fi
    done
    run rm -rf "$STATE" "$TOKEN_FILE"
    say "k3s removed from $(hostname)"
}

kubectl() {
    run "$BIN" kubectl "$@"
}

label_node() {
    if [ -z "$NODE_NAME" ] || [ -z "$GPU_LABEL" ] || [ -z "$GPU_TAINT" ]; then
        die "label needs --node-name, --gpu-label and --gpu-taint"
    fi
    # Bounded: a node that has not registered in 10 minutes is a failure to look at.
    attempts=0
    until [ "$DRY_RUN" -eq 1 ] || "$BIN" kubectl get node "$NODE_NAME" >/dev/null 2>&1; do
        attempts=$((attempts + 1))
        [ "$attempts" -lt 120 ] || die "node $NODE_NAME did not register in 10 minutes"
        sleep 5
    done
    kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=600s
    if [ "$GPU" -eq 1 ]; then
        kubectl label node "$NODE_NAME" --overwrite "$GPU_LABEL"
        kubectl taint node "$NODE_NAME" --overwrite "$GPU_TAINT"
    else
        # Not (or no longer, when its gpus went to 0) a place for Triton or the device plugin.
        kubectl label node "$NODE_NAME" "${GPU_LABEL%%=*}-" 2>/dev/null || true
        kubectl taint node "$NODE_NAME" "${GPU_TAINT%%=*}-" 2>/dev/null || true
    fi
}

drain_node() {
    [ -n "$NODE_NAME" ] || die "drain needs --node-name"
    if [ "$DRY_RUN" -eq 0 ] && ! "$BIN" kubectl get node "$NODE_NAME" >/dev/null 2>&1; then
        say "node $NODE_NAME is not in the cluster; nothing to drain"
        return 0
    fi
    # A PodDisruptionBudget may hold a pod past the timeout; the node goes anyway (it is being
    # removed), and the warning says which.
    kubectl drain "$NODE_NAME" --ignore-daemonsets --delete-emptydir-data --timeout=300s ||
        echo "warning: draining $NODE_NAME did not finish in 300s; deleting it anyway" >&2
    kubectl delete node "$NODE_NAME" --ignore-not-found
}

case $ACTION in
install) install_k3s ;;
uninstall) uninstall_k3s ;;
label) label_node ;;
drain) drain_node ;;
*) usage ;;
esac
