#!/usr/bin/env bash
# Builds the service image (deploy/Dockerfile) from nothing, on a machine that may have no
# Docker yet and no container registry (make image = this script).
#
#   deploy/image.sh                      -> sam3v:latest
#
# Settings (environment):
#   SAM3V_IMAGE      the tag to build (sam3v:latest)
#   BASE_IMAGE       the base (default: the Dockerfile's CUDA PyTorch image where a GPU and
#                    a registry are there, else the local Debian base sam3v-base:bookworm,
#                    made here with debootstrap once and then reused)
#   TORCH_INDEX_URL  an index for torch + torchvision alone on the Debian base (default:
#                    PyPI, whose x86_64 wheels bring the CUDA libraries, ~4.4 GB installed;
#                    https://download.pytorch.org/whl/cpu is ~5x smaller where reachable)
#   DEBIAN_MIRROR    for debootstrap (http://deb.debian.org/debian)
#
# Steps: install Debian's docker.io + docker-compose if docker is missing; start dockerd if
# none answers; choose/make the base; build with the classic builder (no BuildKit frontend
# to pull) at low CPU priority; print the image size and build seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE=${SAM3V_IMAGE:-sam3v:latest}
LOCAL_BASE=sam3v-base:bookworm
CUDA_BASE=$(sed -n 's/^ARG BASE_IMAGE=//p' deploy/Dockerfile)
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
say() { echo "image.sh: $*"; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_install() {
    # Another apt run (unattended-upgrades, a colleague) may hold the lock: wait for it.
    as_root apt-get -o DPkg::Lock::Timeout=600 update -qq
    as_root env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 \
        install -y -qq --no-install-recommends "$@"
}

# 1. Docker itself.
if ! command -v docker >/dev/null; then
    say "docker not found: installing Debian's docker.io and docker-compose"
    apt_install docker.io docker-compose
fi
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || {
    say "no compose found: installing Debian's docker-compose (1.29)"; apt_install docker-compose; }

# 2. A daemon that answers.
if docker info >/dev/null 2>&1; then
    say "dockerd answers already"
else
    if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
        say "starting dockerd: systemctl start docker"
        as_root systemctl start docker
    else
        # No systemd (a container, a CI runner): run it in the background, log to a file.
        say "starting dockerd: nohup dockerd >/tmp/dockerd.log 2>&1 & (no systemd here)"
        as_root sh -c 'nohup dockerd >/tmp/dockerd.log 2>&1 &'
    fi
    for _ in $(seq 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
    docker info >/dev/null 2>&1 || { say "dockerd did not answer in 60 s; see /tmp/dockerd.log"; exit 1; }
    say "dockerd answers"
fi

# 3. The base image.
has_gpu() { command -v nvidia-smi >/dev/null && nvidia-smi -L >/dev/null 2>&1; }
if [ -z "${BASE_IMAGE:-}" ]; then
    if has_gpu && { docker image inspect "$CUDA_BASE" >/dev/null 2>&1 || docker pull "$CUDA_BASE"; }; then
        BASE_IMAGE=$CUDA_BASE
    else
        has_gpu && say "cannot pull $CUDA_BASE: building on the local Debian base"
        BASE_IMAGE=$LOCAL_BASE
    fi
fi
if [ "$BASE_IMAGE" = "$LOCAL_BASE" ] && ! docker image inspect "$LOCAL_BASE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || apt_install debootstrap
    rootfs=$(mktemp -d /tmp/sam3v-rootfs.XXXXXX)
    trap 'as_root rm -rf "$rootfs"' EXIT
    say "making $LOCAL_BASE: debootstrap --variant=minbase bookworm $rootfs $MIRROR"
    start=$(date +%s)
    as_root nice -n 10 debootstrap --variant=minbase bookworm "$rootfs" "$MIRROR" >/tmp/sam3v-debootstrap.log \
        || { say "debootstrap failed; see /tmp/sam3v-debootstrap.log"; exit 1; }
    as_root tar -C "$rootfs" -c . | docker import - "$LOCAL_BASE" >/dev/null
    say "made $LOCAL_BASE in $(( $(date +%s) - start )) s"
elif [ "$BASE_IMAGE" = "$LOCAL_BASE" ]; then
    say "reusing $LOCAL_BASE"
fi

# 4. The build context: the files git tracks or would track (what .gitignore leaves out,
#    .venv, data, runs, ... stays out), plus pip's CA bundle when pip's configuration names
#    one. A tar on stdin, because the classic builder reads only a root .dockerignore.
context=$(mktemp -d /tmp/sam3v-context.XXXXXX)
trap 'rm -rf "$context"; [ -z "${rootfs:-}" ] || as_root rm -rf "$rootfs"' EXIT
git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' f; do [ -f "$f" ] && printf '%s\0' "$f"; done \
    | tar --null -T - -cf "$context/context.tar"
pip_cert() {   # the `cert` pip's configuration names (any file or PIP_CERT), else nothing
    local pip; pip=$(command -v pip3 || command -v pip || echo .venv/bin/pip)
    [ -x "$pip" ] || return 0
    "$pip" config list 2>/dev/null | sed -n "s/^[^=]*\.cert='\(.*\)'\$/\1/p" | head -1
}
cert=${PIP_CERT:-$(pip_cert)}
if [ -n "$cert" ] && [ -f "$cert" ]; then
    say "passing pip's CA bundle $cert into the build (deps stage only)"
    cp "$cert" "$context/.pip-ca.pem"
    tar -C "$context" -rf "$context/context.tar" .pip-ca.pem
fi

say "building $IMAGE on $BASE_IMAGE${TORCH_INDEX_URL:+ (torch from $TORCH_INDEX_URL)}"
start=$(date +%s)
DOCKER_BUILDKIT=0 nice -n 10 docker build -f deploy/Dockerfile -t "$IMAGE" \
    --build-arg BASE_IMAGE="$BASE_IMAGE" --build-arg TORCH_INDEX_URL="${TORCH_INDEX_URL:-}" \
    - <"$context/context.tar"
seconds=$(( $(date +%s) - start ))
size=$(docker image inspect "$IMAGE" --format '{{.Size}}')
say "built $IMAGE: $(( size / 1000000 )) MB, $seconds s"
