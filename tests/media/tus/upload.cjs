// Uploads a file to a real parleyd with tus-js-client (unmodified), aborting
// the first attempt in the middle of a PATCH and resuming it with a second
// Upload that starts from the upload URL (HEAD, then PATCH from the offset
// the server stored). Prints one JSON line: {url, resumed_from, size}.
//
// Usage: node upload.cjs BASE_URL ACCESS_TOKEN FILE CONTENT_TYPE
'use strict';
const fs = require('fs');
const path = require('path');
const tus = require('tus-js-client');

const [base, token, file, contentType] = process.argv.slice(2);
const data = fs.readFileSync(file);
const chunkSize = 256 * 1024;

function options(extra) {
  return Object.assign({
    endpoint: base + '/v1/uploads',
    headers: { Authorization: 'Bearer ' + token },
    metadata: { content_type: contentType, filename: path.basename(file) },
    chunkSize,
    // 409 and 423 (the aborted PATCH still finishing on the server) are retried.
    retryDelays: [0, 100, 200, 500, 1000, 2000],
    storeFingerprintForResuming: false,
  }, extra);
}

function fail(err) {
  console.error('upload failed: ' + err);
  process.exit(1);
}

let resumedFrom = -1;
const first = new tus.Upload(data, options({
  onError: fail,
  onProgress(sent) {
    // Abort mid-body, away from a chunk boundary.
    if (sent > data.length * 0.4 && !first._parleyAborted) {
      first._parleyAborted = true;
      first.abort(false).then(() => setTimeout(resume, 300));
    }
  },
  onSuccess() { fail('the first attempt finished before it was interrupted'); },
}));

function resume() {
  const url = first.url;
  if (!url) fail('no upload URL after the first attempt');
  const second = new tus.Upload(data, options({
    uploadUrl: url,
    onError: fail,
    onAfterResponse(req, res) {
      if (req.getMethod() === 'HEAD' && resumedFrom < 0) {
        resumedFrom = Number(res.getHeader('Upload-Offset'));
      }
    },
    onSuccess() {
      console.log(JSON.stringify({ url, resumed_from: resumedFrom, size: data.length }));
    },
  }));
  second.start();
}

first.start();
