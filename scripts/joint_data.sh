#!/usr/bin/env bash
# Install the open, licensed image–name sets the joint head trains and is evaluated on.
# They go into a cache dir OUTSIDE the repo (never copied into it, never shipped).
# Versions are pinned so a rerun of scripts/train_joint_head.py sees the same images.
# Licences: see docs/DATA_CARD_joint.md.
set -euo pipefail
# npm comes with Debian's nodejs/npm packages when the machine has none.
command -v npm >/dev/null || bash "$(dirname "$0")/apt-deps.sh" nodejs npm
DEST="${EDGERAG_JOINT_DATA:-${XDG_CACHE_HOME:-$HOME/.cache}/edgerag/joint-data}"
mkdir -p "$DEST"
cd "$DEST"
[ -f package.json ] || echo '{"name":"edgerag-joint-data","private":true}' > package.json
npm install --no-audit --no-fund --ignore-scripts --save-exact \
  @iconify-json/noto@1.2.9 \
  @iconify-json/twemoji@1.2.5 \
  @iconify-json/openmoji@1.2.29 \
  @iconify-json/fluent-emoji-flat@1.2.6 \
  @iconify-json/emojione@1.2.3 \
  @iconify-json/tabler@1.2.41 \
  @iconify-json/mdi@1.2.3 \
  @iconify-json/lucide@1.2.137 \
  @iconify-json/noto-v1@1.2.5 \
  @iconify-json/fxemoji@1.2.2 \
  @iconify-json/streamline-emojis@1.2.4 \
  @iconify-json/iconoir@1.2.11 \
  @iconify-json/ph@1.2.2 \
  @iconify-json/carbon@1.2.29 \
  @iconify-json/bi@1.2.7
echo "joint-head data in $DEST"
