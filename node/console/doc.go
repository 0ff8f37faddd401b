// Package console is the broker's web console: a small single-page app
// (plain HTML, CSS and JavaScript, no build step) embedded in the binary
// and served next to the admin API, which it reads and drives.
//
// It owns the static assets in web/ and the handler that serves them with
// strict security headers; every number it shows comes from /api/v1 (see
// docs/API.md), so the console holds no state of its own.
package console
