# Sourced by scripts that run inside `nsenter --net=/run/netns/NS unshare
# --mount --propagation slave`. ns_private_view T gives the namespace its own
# sysfs (so a daemon there sees only the namespace's links; the cgroup mounts
# are saved with an rbind and bound back) and hides the host's /etc/docker
# (dockerd 20.10 writes /etc/docker/key.json there). T is a scratch dir.
ns_private_view() {
    local T=$1
    mkdir -p "$T/cgroup-save" "$T/etc-docker"
    mount --rbind /sys/fs/cgroup "$T/cgroup-save"
    mount -t sysfs sysfs /sys
    mount --rbind "$T/cgroup-save" /sys/fs/cgroup
    if [ -d /etc/docker ]; then
        mount --bind "$T/etc-docker" /etc/docker
    fi
}
