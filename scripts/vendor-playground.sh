#!/bin/sh
# vendor-playground.sh downloads the GraphiQL playground's scripts and styles
# from the npm registry and copies them, with each package's licence, into
# server/playground/assets/, where the server embeds them with go:embed. The
# result is committed, so building and running the server needs no network.
#
# Versions and tarball integrities are pinned: a different tarball behind the
# same version makes the script fail instead of vendoring it.
#
# Usage: scripts/vendor-playground.sh   (from anywhere; needs npm, tar and openssl)
set -eu

# package@version and the sha512 integrity the registry publishes for it.
GRAPHIQL=graphiql@3.8.3
GRAPHIQL_SRI=sha512-cuPDYtXVKV86Pu5PHBX642Odi/uVEE2y1Jxq5rGO/Qy1G2lRp7ZZ7a/T30RzxhuLSWo9zUbzq0P3U49//H0Ugw==
REACT=react@18.3.1
REACT_SRI=sha512-wS+hAgJShR0KhEvPJArfuPVN1+Hz1t0Y6n5jLrGQbkb4urgPE/0Rve+1kMB1v/oWgHgm4WIcV+i7F2pTVj+2iQ==
REACT_DOM=react-dom@18.3.1
REACT_DOM_SRI=sha512-5m4nQKp+rZRb09LNH59GM4BxTh9251/ylbKIbpe7TpGxfJ+9kv6BLkLBXIjjspbgbnIBNqlI23tRnTWT0snUIw==

. "$(dirname "$0")/vendor-lib.sh"
dest="$root/server/playground/assets"

fetch "$GRAPHIQL" "$GRAPHIQL_SRI"
fetch "$REACT" "$REACT_SRI"
fetch "$REACT_DOM" "$REACT_DOM_SRI"

fresh_dest
copy "$GRAPHIQL" graphiql.min.js graphiql.min.js
copy "$GRAPHIQL" graphiql.min.css graphiql.min.css
copy "$GRAPHIQL" LICENSE LICENSE.graphiql.txt
copy "$REACT" umd/react.production.min.js react.production.min.js
copy "$REACT" LICENSE LICENSE.react.txt
copy "$REACT_DOM" umd/react-dom.production.min.js react-dom.production.min.js
copy "$REACT_DOM" LICENSE LICENSE.react-dom.txt

cat >"$dest/VERSIONS" <<EOF
# Written by scripts/vendor-playground.sh; do not edit by hand.
$GRAPHIQL $GRAPHIQL_SRI
$REACT $REACT_SRI
$REACT_DOM $REACT_DOM_SRI
EOF

wrote
