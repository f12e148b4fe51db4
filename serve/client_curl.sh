#!/usr/bin/env bash
# Ask a served videollm model about a video with curl: serve/client_curl.sh clip.mp4 "What happens?"
set -euo pipefail
VIDEO=${1:?video file}; QUESTION=${2:-"What happens in the video?"}
BASE=${BASE_URL:-http://127.0.0.1:8000}
MODEL=$(curl -s "$BASE/v1/models" -H "Authorization: Bearer ${API_KEY:-EMPTY}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
B64=$(base64 -w0 "$VIDEO")
curl -s "$BASE/v1/chat/completions" -H "Content-Type: application/json" -H "Authorization: Bearer ${API_KEY:-EMPTY}" -d @- <<JSON
{"model": "$MODEL", "max_tokens": 128, "temperature": 0,
 "mm_processor_kwargs": {"num_frames": ${FRAMES:-8}},
 "messages": [{"role": "user", "content": [
   {"type": "video_url", "video_url": {"url": "data:video/mp4;base64,$B64"}},
   {"type": "text", "text": "$QUESTION"}]}]}
JSON
echo
