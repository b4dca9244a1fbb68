# vendor-lib.sh holds what the scripts that vendor npm packages into the
# repository share (vendor-playground.sh, vendor-docs.sh). It is sourced, not
# run: a script sources it, sets dest, the directory it writes, then fetches
# its packages and copies their files:
#
#	. "$(dirname "$0")/vendor-lib.sh"
#	dest="$root/server/playground/assets"
#	fetch graphiql@3.8.3 sha512-…
#	fresh_dest
#	copy graphiql@3.8.3 graphiql.min.js graphiql.min.js
#	wrote
#
# It sets root (the repository), me (the script's name, for messages) and
# work (a directory removed on exit). Needs npm, tar and openssl.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
me=$(basename "$0" .sh)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# fail MESSAGE: print MESSAGE after the script's name and exit 1.
fail() {
	echo "$me: $1" >&2
	exit 1
}

# fetch PKG SRI: npm pack PKG into $work/PKG/ and check its integrity (the
# sha512 the registry publishes for it), then unpack it there.
fetch() {
	dir="$work/$1"
	mkdir -p "$dir"
	(cd "$dir" && npm pack --silent "$1" >/dev/null)
	tarball=$(ls "$dir"/*.tgz)
	got="sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)"
	if [ "$got" != "$2" ]; then
		fail "$1 has integrity $got, want $2"
	fi
	tar -xzf "$tarball" -C "$dir"
}

# fresh_dest: empty $dest, or make it.
fresh_dest() {
	rm -rf "$dest"
	mkdir -p "$dest"
}

# copy PKG FILE NAME: copy FILE of PKG's package directory to $dest/NAME.
copy() {
	cp "$work/$1/package/$2" "$dest/$3"
}

# wrote: say how many files $dest holds.
wrote() {
	echo "$me: wrote $(ls "$dest" | wc -l | tr -d ' ') files to ${dest#"$root"/}"
}
