# shellcheck shell=bash
# tools/bundle.sh: the air-gapped install, sourced by ./gw (uses its say, die, package_list, ROOT, VENV).
#   ./gw bundle [FILE]                     on a Debian 12 machine with the registries: write FILE
#   ./gw demo|test|setup --from-bundle FILE   on a Debian 12 machine with no network: install from it
# FILE is one uncompressed tar (its parts are compressed already):
#   debs/      every .deb the demo and the tests need with its whole dependency closure, resolved
#              against an empty package database (so any Debian 12, however minimal, is covered),
#              plus Packages: a flat apt repository, installed with apt from file: only
#   wheels/    wheels of gridwatch's dependencies incl. dev, pip, setuptools and wheel
#              (pip install --no-index --find-links)
#   npm-cache/ npm's cache after `npm ci` of maps/assets' lock (npm ci --offline --cache)
#   MANIFEST   what was bundled, from which machine, when

# What a bundle is made for: when these differ from the checkout's, the bundle is stale.
bundle_inputs() {
  echo "inputs: $(cat "$ROOT/pyproject.toml" "$ROOT/maps/assets/package-lock.json" | sha256sum | cut -c1-16)"
}

PIP_FROM=()
NPM_FROM=()
NPM_SOURCE="the npm registry"
BUNDLE_DIR=""

# apt with the bundle's flat repository as its only source, and lists/caches of its own.
bundle_apt() {
  local sudo=()
  while [ "${1:-}" = sudo ] || [ "${1:-}" = -n ]; do sudo+=("$1"); shift; done
  "${sudo[@]}" apt-get \
    -o Dir::Etc::SourceList="$BUNDLE_DIR/apt/sources.list" -o Dir::Etc::SourceParts=/dev/null \
    -o Dir::State::Lists="$BUNDLE_DIR/apt/lists" -o Dir::Cache="$BUNDLE_DIR/apt/cache" \
    -o APT::Get::List-Cleanup=0 -o Acquire::Languages=none "$@"
}

bundle_unpack() {
  local file=$1 stamp
  BUNDLE_DIR="$ROOT/.gridwatch/bundle"
  stamp="$(stat -c '%s %Y' "$file") $file"
  if [ ! -f "$BUNDLE_DIR/.unpacked" ] || [ "$(cat "$BUNDLE_DIR/.unpacked")" != "$stamp" ]; then
    say "unpacking $file"
    rm -rf "$BUNDLE_DIR" && mkdir -p "$BUNDLE_DIR"
    tar -xf "$file" -C "$BUNDLE_DIR" || die "cannot unpack $file (is it a file ./gw bundle wrote?)"
    [ -f "$BUNDLE_DIR/MANIFEST" ] || die "$file has no MANIFEST: not a gridwatch bundle"
    mkdir -p "$BUNDLE_DIR/apt/lists/partial" "$BUNDLE_DIR/apt/cache/archives/partial"
    echo "deb [trusted=yes] file:$BUNDLE_DIR/debs ./" > "$BUNDLE_DIR/apt/sources.list"
    bundle_apt update -qq >/dev/null || die "apt cannot read the bundle's package index"
    echo "$stamp" > "$BUNDLE_DIR/.unpacked"
  fi
  if grep -q '^inputs: ' "$BUNDLE_DIR/MANIFEST" && ! grep -qx "$(bundle_inputs)" "$BUNDLE_DIR/MANIFEST"; then
    say "warning: this bundle was made for other dependencies (pyproject.toml or maps/assets' lock"
    say "changed since); what it lacks cannot be installed. Make a new one with ./gw bundle."
  fi
  PIP_FROM=(--no-index --find-links "$BUNDLE_DIR/wheels")
  NPM_FROM=(--offline --cache "$BUNDLE_DIR/npm-cache")
  NPM_SOURCE="the bundle's npm cache"
}

# A flat apt repository index of the .debs in a directory (what dpkg-scanpackages writes).
bundle_index_debs() {
  local dir=$1 deb
  : > "$dir/Packages"
  for deb in "$dir"/*.deb; do
    {
      dpkg-deb -f "$deb"
      echo "Filename: ./$(basename "$deb")"
      echo "Size: $(stat -c %s "$deb")"
      echo "MD5sum: $(md5sum < "$deb" | cut -d' ' -f1)"
      echo "SHA256: $(sha256sum < "$deb" | cut -d' ' -f1)"
      echo
    } >> "$dir/Packages"
  done
}

bundle_build() {
  local out=$1 work pkgs=() n_debs n_wheels started=$SECONDS
  [ "$(id -u)" -eq 0 ] || die "./gw bundle downloads with apt: run it as root"
  case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
  work=$(mktemp -d /var/tmp/gw-bundle.XXXXXX) && chmod 755 "$work"  # apt downloads as _apt
  trap "rm -rf '$work'" EXIT
  mkdir -p "$work/debs" "$work/wheels" "$work/npm-cache" "$work/apt/archives/partial"

  package_list all
  say "resolving and downloading ${#pkgs[@]} Debian packages with their whole dependency closure"
  # An empty package database: apt resolves the closure as if nothing were installed, so the
  # bundle also covers a debootstrap minbase root (what is in it already is simply not installed).
  : > "$work/apt/status"
  apt-get update -qq || say "apt-get update failed; resolving with the package lists already here"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --download-only --no-install-recommends \
    -o Dir::State::status="$work/apt/status" -o Dir::Cache::archives="$work/apt/archives" \
    -o Debug::NoLocking=1 "${pkgs[@]}" >/dev/null || die "apt could not download ${pkgs[*]}"
  mv "$work"/apt/archives/*.deb "$work/debs/"
  rm -rf "$work/apt"
  bundle_index_debs "$work/debs"

  say "building wheels of gridwatch's Python dependencies (dev included)"
  if ! "$VENV/bin/python" -m pip wheel -q --wheel-dir "$work/wheels" ".[dev]" pip "setuptools>=68" wheel \
    >"$work/pip.log" 2>&1; then
    grep -v "is ignored: it is neither" "$work/pip.log" | tail -20 >&2
    die "pip wheel failed"
  fi
  rm -f "$work/pip.log"
  rm -f "$work"/wheels/gridwatch-*.whl  # the project itself is installed from the checkout

  say "filling an npm cache from maps/assets' lock"
  mkdir -p "$work/npm-src"
  cp "$ROOT/maps/assets/package.json" "$ROOT/maps/assets/package-lock.json" "$work/npm-src/"
  (cd "$work/npm-src" && npm ci --cache "$work/npm-cache" --no-audit --no-fund --loglevel=error >/dev/null) \
    || die "npm ci for the bundle's cache failed"
  rm -rf "$work/npm-src"

  n_debs=$(ls "$work"/debs/*.deb | wc -l)
  n_wheels=$(ls "$work"/wheels/*.whl | wc -l)
  {
    echo "gridwatch air-gapped bundle"
    echo "made: $(date -u +%Y-%m-%dT%H:%M:%SZ) from commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
    echo "for: Debian $(cat /etc/debian_version) $(dpkg --print-architecture), $("$VENV/bin/python" -V)"
    echo "debian packages asked for: ${pkgs[*]}"
    echo "debs: $n_debs (with dependencies), wheels: $n_wheels, npm cache: maps/assets/package-lock.json"
    echo "install: ./gw demo --from-bundle FILE   or   ./gw test --from-bundle FILE"
    bundle_inputs
  } > "$work/MANIFEST"
  tar -cf "$out.part" -C "$work" MANIFEST debs wheels npm-cache && mv "$out.part" "$out"
  say "wrote $out: $(du -h "$out" | cut -f1), $n_debs debs, $n_wheels wheels, in $((SECONDS - started)) s"
}
