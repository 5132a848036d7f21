#!/bin/bash
# Builds the local test image `shoal-test/busybox:latest` without a registry:
# a rootfs holding Debian's static busybox at /bin/busybox plus a symlink per
# applet, wrapped as a docker-archive tar (manifest.json + config + one layer)
# that `docker load -i` accepts. With --oci it writes an OCI image layout tar
# instead (oci-layout, index.json, blobs/sha256/...).
#
# Usage: make-test-image.sh [--oci] OUT.tar [TAG]
# Needs: busybox (Debian busybox-static), tar, sha256sum, python3 is not used.
# The output is reproducible: same busybox, same bytes.
set -euo pipefail

format=docker
if [ "${1:-}" = "--oci" ]; then
    format=oci
    shift
fi
out=${1:?usage: make-test-image.sh [--oci] OUT.tar [TAG]}
tag=${2:-shoal-test/busybox:latest}
busybox=${BUSYBOX:-/bin/busybox}

if ! file -L "$busybox" 2>/dev/null | grep -q 'statically linked'; then
    if ! [ -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
        echo "make-test-image: $busybox is not a static busybox (apt-get install busybox-static)" >&2
        exit 1
    fi
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,proc,sys,dev,root,var/www,home}
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
chmod 755 "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] && continue
    ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf '<html><body>shoal test</body></html>\n' >"$root/var/www/index.html"

tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=gnu)
tar -C "$root" "${tarflags[@]}" -cf "$work/layer.tar" .
layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
layer_size=$(stat -c %s "$work/layer.tar")

config='{"architecture":"amd64","os":"linux","created":"1970-01-01T00:00:00Z",'
config+='"config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"],"WorkingDir":"/"},'
config+='"rootfs":{"type":"layers","diff_ids":["sha256:'$layer_sha'"]},'
config+='"history":[{"created":"1970-01-01T00:00:00Z","created_by":"make-test-image.sh: static busybox"}]}'
printf '%s' "$config" >"$work/config.json"
config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
config_size=$(stat -c %s "$work/config.json")

pkg=$work/pkg
mkdir -p "$pkg"
repo=${tag%:*}
version=${tag##*:}
if [ "$format" = docker ]; then
    mkdir -p "$pkg/$layer_sha"
    mv "$work/layer.tar" "$pkg/$layer_sha/layer.tar"
    printf '1.0' >"$pkg/$layer_sha/VERSION"
    mv "$work/config.json" "$pkg/$config_sha.json"
    printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' \
        "$config_sha" "$tag" "$layer_sha" >"$pkg/manifest.json"
    printf '{"%s":{"%s":"%s"}}' "$repo" "$version" "$layer_sha" >"$pkg/repositories"
else
    blobs=$pkg/blobs/sha256
    mkdir -p "$blobs"
    mv "$work/layer.tar" "$blobs/$layer_sha"
    mv "$work/config.json" "$blobs/$config_sha"
    manifest='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json",'
    manifest+='"config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:'$config_sha'","size":'$config_size'},'
    manifest+='"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar","digest":"sha256:'$layer_sha'","size":'$layer_size'}]}'
    printf '%s' "$manifest" >"$work/manifest.json"
    manifest_sha=$(sha256sum "$work/manifest.json" | cut -d' ' -f1)
    manifest_size=$(stat -c %s "$work/manifest.json")
    mv "$work/manifest.json" "$blobs/$manifest_sha"
    printf '{"imageLayoutVersion":"1.0.0"}' >"$pkg/oci-layout"
    index='{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{'
    index+='"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:'$manifest_sha'","size":'$manifest_size','
    index+='"annotations":{"io.containerd.image.name":"docker.io/'$tag'","org.opencontainers.image.ref.name":"'$version'"}}]}'
    printf '%s' "$index" >"$pkg/index.json"
fi
tar -C "$pkg" "${tarflags[@]}" -cf "$out" .
echo "make-test-image: wrote $out ($format, $tag, layer sha256:$layer_sha)"
