package fsm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// The FSM directory holds pebble stores named db-N and a file ACTIVE naming
// the one in use. Restore builds db-N+1 beside the active store and switches
// by rewriting ACTIVE atomically, so a crash at any point leaves either the
// old or the new store active, never a half-restored one; Open removes
// whichever store is not active.
const (
	activeFile  = "ACTIVE"
	storePrefix = "db-"
)

func storeName(gen uint64) string { return storePrefix + strconv.FormatUint(gen, 10) }

func storeGen(name string) (uint64, bool) {
	s, ok := strings.CutPrefix(name, storePrefix)
	if !ok {
		return 0, false
	}
	gen, err := strconv.ParseUint(s, 10, 64)
	return gen, err == nil && storeName(gen) == name
}

// readActive returns the active store's name, or "" when dir has none yet.
func readActive(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, activeFile))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("fsm: read active store: %w", err)
	}
	name := strings.TrimSpace(string(b))
	if _, ok := storeGen(name); !ok {
		return "", fmt.Errorf("fsm: %s names %q, not a store", filepath.Join(dir, activeFile), name)
	}
	return name, nil
}

// writeActive makes name the active store, durably: write a temporary file,
// sync it, rename it over ACTIVE, sync the directory.
func writeActive(dir, name string) error {
	tmp := filepath.Join(dir, activeFile+".tmp")
	if err := writeFileSync(tmp, []byte(name+"\n")); err != nil {
		return fmt.Errorf("fsm: write active store: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, activeFile)); err != nil {
		return fmt.Errorf("fsm: write active store: %w", err)
	}
	if err := syncDir(dir); err != nil {
		return fmt.Errorf("fsm: write active store: %w", err)
	}
	return nil
}

func writeFileSync(path string, data []byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// removeStale removes every store in dir but the active one: leftovers of a
// restore that crashed, or of an old store that was still being read.
func removeStale(dir, active string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("fsm: list %s: %w", dir, err)
	}
	for _, e := range entries {
		if _, ok := storeGen(e.Name()); !ok || e.Name() == active {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("fsm: remove stale store: %w", err)
		}
	}
	return nil
}
