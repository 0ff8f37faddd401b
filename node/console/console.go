package console

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed web
var web embed.FS

// contentSecurityPolicy allows only the console's own files and API: no
// inline script or style, no frames, no other origins.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; " +
	"img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// contentTypes maps the asset extensions the console uses to their types.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
	".png":  "image/png",
	".ico":  "image/x-icon",
}

// asset is one embedded file, ready to serve.
type asset struct {
	name  string
	body  []byte
	ctype string
	etag  string
}

type handler struct {
	index  *asset
	static map[string]*asset // by name under /static/
}

// Handler serves the console: index.html at "/", the other assets under
// "/static/", and 404 for every other path. Mount it at "/" of the admin
// mux; the API's more specific patterns take precedence.
func Handler() http.Handler {
	h := &handler{static: map[string]*asset{}}
	err := fs.WalkDir(web, "web", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := web.ReadFile(p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		ctype, ok := contentTypes[path.Ext(p)]
		if !ok {
			ctype = "application/octet-stream"
		}
		a := &asset{
			name:  path.Base(p),
			body:  body,
			ctype: ctype,
			etag:  `"` + hex.EncodeToString(sum[:12]) + `"`,
		}
		name := strings.TrimPrefix(p, "web/")
		if name == "index.html" {
			h.index = a
		} else {
			h.static[name] = a
		}
		return nil
	})
	if err != nil || h.index == nil {
		// The assets are compiled in: this is a build mistake.
		panic("console: embedded assets are missing: web/index.html")
	}
	return h
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", contentSecurityPolicy)
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")

	var a *asset
	switch p := r.URL.Path; {
	case p == "/":
		a = h.index
	case strings.HasPrefix(p, "/static/"):
		a = h.static[strings.TrimPrefix(p, "/static/")]
	}
	if a == nil {
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hdr.Set("Allow", "GET, HEAD")
		http.Error(w, "405 method not allowed", http.StatusMethodNotAllowed)
		return
	}
	// The assets change only with the binary: let browsers keep them but
	// revalidate every time, which costs a 304 thanks to the ETag.
	hdr.Set("Cache-Control", "no-cache")
	hdr.Set("Content-Type", a.ctype)
	hdr.Set("ETag", a.etag)
	http.ServeContent(w, r, a.name, time.Time{}, bytes.NewReader(a.body))
}
