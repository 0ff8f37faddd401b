package test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Browser is one tab of a headless chromium driven through chromedp, for
// the web console's tests. It records what the page writes to its
// console, so a test can fail on script errors and policy violations.
type Browser struct {
	t   testing.TB
	ctx context.Context // the tab; derive deadlines from it, never cancel it

	mu       sync.Mutex
	messages []chromedp.ConsoleMessage
}

// chromiumPath finds the browser on PATH: Debian's "chromium", or
// "chromium-browser" elsewhere.
func chromiumPath() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("neither chromium nor chromium-browser is on PATH")
}

// StartBrowser starts headless chromium with one tab, closed by t's
// cleanup. Without chromium it fails the test: CI installs it, and a
// console test that skipped would prove nothing.
func StartBrowser(t testing.TB) *Browser {
	t.Helper()
	path, err := chromiumPath()
	if err != nil {
		t.Fatalf("%v: install it to run the web console tests (Debian/Ubuntu: apt-get install -y chromium)", err)
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests may run as root, where the sandbox refuses to start
		chromedp.DisableGPU,
		chromedp.WindowSize(1400, 900),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancelTab()
		cancelAlloc()
	})
	// The first Do starts the browser and ties it to ctx, so it must not
	// run under a deadline; bound the wait from outside instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start %s: %v", path, err)
		}
	case <-time.After(90 * time.Second):
		// On 2 cores under the whole suite (brokers, the race detector)
		// chromium's first start once took over 30 s.
		t.Fatalf("start %s: no answer after 90s", path)
	}
	b := &Browser{t: t, ctx: ctx}
	msgs := chromedp.Console(ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			b.mu.Lock()
			b.messages = append(b.messages, m)
			b.mu.Unlock()
		}
	}()
	return b
}

// Context is the tab's context, to derive deadlines from.
func (b *Browser) Context() context.Context { return b.ctx }

// Problems lists the uncaught script errors and the security messages
// (a Content-Security-Policy violation, for one) the page reported.
func (b *Browser) Problems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, m := range b.messages {
		if m.IsException() || m.Source == "security" {
			out = append(out, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
		}
	}
	return out
}

// Diagnose logs what the page shows, the HTML of what its main element
// shows and its console, and saves a screenshot named name, for a test
// that failed.
func (b *Browser) Diagnose(name string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	if loc, err := chromedp.Run(ctx, chromedp.Location()); err == nil {
		b.t.Logf("page: %s", loc)
	}
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ''`)); err == nil {
		b.t.Logf("page text:\n%s", text)
	} else {
		b.t.Logf("page text: %v", err)
	}
	// The shown parts of main, or the whole document without one.
	const shownHTML = `(() => {
		const main = document.querySelector('main');
		if (!main) return document.documentElement.outerHTML;
		return Array.from(main.children).filter((e) => !e.hidden).map((e) => e.outerHTML).join('\n');
	})()`
	if html, err := chromedp.Run(ctx, chromedp.Evaluate[string](shownHTML)); err == nil {
		b.t.Logf("page HTML (shown parts of main):\n%s", html)
	}
	b.mu.Lock()
	var lines []string
	for _, m := range b.messages {
		lines = append(lines, fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line+1))
	}
	b.mu.Unlock()
	b.t.Logf("browser console:\n%s", strings.Join(lines, "\n"))
	b.Screenshot(ctx, name)
}

// Screenshot saves a full-page PNG as ArtifactDir/name.png, logs and
// returns its path; it only logs a failure to take it.
func (b *Browser) Screenshot(ctx context.Context, name string) string {
	b.t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	path := filepath.Join(ArtifactDir(b.t), name+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return ""
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// ArtifactDir is where tests leave files for people to look at: the
// directory in RAFTMQ_ARTIFACTS, else test/artifacts. It is created.
func ArtifactDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("RAFTMQ_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot(), "test", "artifacts")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatalf("artifact directory: %v", err)
	}
	return dir
}
