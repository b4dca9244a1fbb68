#!/bin/sh
# vendor-docs.sh downloads the REST API reference page's renderer, Redoc's
# standalone bundle, from the npm registry and copies it, with its licences,
# into server/apidocs/assets/, where the server package embeds it with
# go:embed (server/apidocs.go) and serves it at /api/v1/docs. The result is
# committed, so building and running the server needs no network.
#
# Redoc 2.x rather than Scalar's @scalar/api-reference or Redoc 3: its
# standalone bundle is one 1.1 MB script (Redoc 3's is 2.3 MB, Scalar's 4.9 MB
# plus chunks), it reads OpenAPI 3.1, and runs under a strict
# Content-Security-Policy with only inline styles (styled-components) and a
# blob: worker (its search index) allowed. Redoc 3 loads icons from its CDN,
# Scalar its fonts and, for "try it", a proxy of its own.
#
# Redoc 2 fetches one thing besides the spec, and no option turns it off: the
# logo of its "API docs by Redocly" sidebar link, from cdn.redoc.ly. The
# script empties that image's URL in the copied bundle (the image then fails
# at once, without a request, and Redoc hides it); it fails if the URL is not
# found exactly once, and VERSIONS records the patch.
#
# The version and tarball integrity are pinned: a different tarball behind
# the same version makes the script fail instead of vendoring it.
#
# Usage: scripts/vendor-docs.sh   (from anywhere; needs npm, tar and openssl)
set -eu

# package@version and the sha512 integrity the registry publishes for it.
REDOC=redoc@2.5.4
REDOC_SRI=sha512-M6jWhG1qoBnH6TFmzJnstyCZ87HmOY/UzDm78mHiYihEdlV/YcS9ogOo1NlElnJMeLsyxHFe2yFc4sNjHTrABQ==

root=$(cd "$(dirname "$0")/.." && pwd)
dest="$root/server/apidocs/assets"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT INT TERM

# fetch PKG SRI: npm pack PKG into $work/PKG/ and check its integrity.
fetch() {
	dir="$work/$1"
	mkdir -p "$dir"
	(cd "$dir" && npm pack --silent "$1" >/dev/null)
	tarball=$(ls "$dir"/*.tgz)
	got="sha512-$(openssl dgst -sha512 -binary "$tarball" | openssl base64 -A)"
	if [ "$got" != "$2" ]; then
		echo "vendor-docs: $1 has integrity $got, want $2" >&2
		exit 1
	fi
	tar -xzf "$tarball" -C "$dir"
}

# copy PKG FILE NAME: copy FILE of PKG's package directory to $dest/NAME.
copy() {
	cp "$work/$1/package/$2" "$dest/$3"
}

fetch "$REDOC" "$REDOC_SRI"

rm -rf "$dest"
mkdir -p "$dest"
copy "$REDOC" bundles/redoc.standalone.js redoc.standalone.js
copy "$REDOC" LICENSE LICENSE.redoc.txt
# The notices of the libraries bundled into redoc.standalone.js.
copy "$REDOC" bundles/redoc.standalone.js.LICENSE.txt LICENSE.redoc.standalone.txt

logo='src:"https://cdn.redoc.ly/redoc/logo-mini.svg"'
if [ "$(grep -o "$logo" "$dest/redoc.standalone.js" | wc -l | tr -d ' ')" != 1 ]; then
	echo "vendor-docs: $REDOC's bundle does not load its logo from cdn.redoc.ly exactly once; check the patch" >&2
	exit 1
fi
sed -i.orig "s|$logo|src:\"\"|" "$dest/redoc.standalone.js"
rm "$dest/redoc.standalone.js.orig"
if grep -q 'cdn\.redoc\.ly' "$dest/redoc.standalone.js"; then
	echo "vendor-docs: the patched bundle still names cdn.redoc.ly" >&2
	exit 1
fi

cat >"$dest/VERSIONS" <<EOV
# Written by scripts/vendor-docs.sh; do not edit by hand.
$REDOC $REDOC_SRI
# redoc.standalone.js: bundles/redoc.standalone.js with the src of its
# sidebar logo image, https://cdn.redoc.ly/redoc/logo-mini.svg, emptied.
EOV

echo "vendor-docs: wrote $(ls "$dest" | wc -l | tr -d ' ') files to ${dest#"$root"/}"
