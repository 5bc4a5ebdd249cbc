#!/usr/bin/env bash
# Seeds the decoder's corpus with the golden JSON files (every client message type).
set -euo pipefail
cd "$(dirname "$0")"
mkdir -p corpus/decode_client
cp ../../protocol/golden/client/*.json corpus/decode_client/
