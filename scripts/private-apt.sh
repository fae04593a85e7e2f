# shellcheck shell=bash
# private-apt.sh - sourced by the fetch scripts (fetch-kernels.sh, fetch-lua-sources.sh --suite):
# an apt configuration of their own, so that they read the Debian archive's suites they need
# without the host's /etc/apt being written or its sources list read.

# private_apt_conf ROOT: creates ROOT/apt.conf, a configuration with its own sources list
# (ROOT/sources.list, written by the caller), package state (an empty dpkg status: the host's
# installed packages play no part), lists and cache under ROOT. The host's configuration parts
# are still read (proxies and the like), but the hooks they add to updates and dpkg runs are
# cleared (the file is read again, as Dir::Etc::Main, after them).
private_apt_conf() {
	local root=$1
	mkdir -p "$root/lists/partial" "$root/cache/archives/partial" "$root/state"
	: >"$root/state/status"
	cat >"$root/apt.conf" <<EOF
Dir::Etc::Main "$root/apt.conf";
Dir::Etc::SourceList "$root/sources.list";
Dir::Etc::SourceParts "/dev/null";
Dir::Etc::Preferences "/dev/null";
Dir::Etc::PreferencesParts "/dev/null";
Dir::State "$root/state";
Dir::State::Lists "$root/lists";
Dir::State::status "$root/state/status";
Dir::Cache "$root/cache";
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APT::Architecture "amd64";
APT::Architectures { "amd64"; };
APT::Sandbox::User "root";
Acquire::Languages "none";
#clear APT::Update::Pre-Invoke;
#clear APT::Update::Post-Invoke;
#clear APT::Update::Post-Invoke-Success;
#clear DPkg::Pre-Invoke;
#clear DPkg::Post-Invoke;
EOF
}
