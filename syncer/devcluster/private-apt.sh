# Sourced by the control plane's install scripts: a private apt configuration in DIR that
# fetches from the given sources lines without touching the machine's own sources.list.
# Packages are downloaded or unpacked, never installed.
#
#   private_apt DIR "deb [...] http://deb.debian.org/debian trixie main" ...
#   apt-get "${APT_OPTS[@]}" update -qq
private_apt() {
  local dir="$1"; shift
  mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
  printf '%s\n' "$@" > "$dir/sources.list"
  APT_OPTS=(
    -o "Dir::Etc::SourceList=$dir/sources.list"
    -o "Dir::Etc::SourceParts=/dev/null"
    -o "Dir::State::Lists=$dir/lists"
    -o "Dir::Cache=$dir/cache"
    -o "Debug::NoLocking=1"
    -o "APT::Sandbox::User=root"
  )
}
