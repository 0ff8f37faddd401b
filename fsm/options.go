package fsm

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
)

// Options tunes the FSM's pebble store. The zero value uses the defaults.
type Options struct {
	// CacheSize is pebble's block cache, in bytes. Default 64 MiB.
	CacheSize int64
	// MemTableSize is the size of one pebble memtable, in bytes: the
	// amount of writes between flushes to disk. Default 64 MiB, large so
	// that a message acked soon after it was sent meets its delete in the
	// memtable and neither reaches an sstable. At most 4 GiB - 1.
	MemTableSize int64
	// Logger receives pebble's messages (WAL recovery, background
	// errors). Default slog.Default().
	Logger *slog.Logger
}

const (
	defaultCacheSize    = 64 << 20
	defaultMemTableSize = 64 << 20
	maxMemTableSize     = 4<<30 - 1 // pebble's limit
)

// Validate reports an option out of range.
func (o Options) Validate() error {
	if o.CacheSize < 0 {
		return fmt.Errorf("fsm: cache size %d is negative", o.CacheSize)
	}
	if o.MemTableSize < 0 || o.MemTableSize > maxMemTableSize {
		return fmt.Errorf("fsm: memtable size %d is outside [0, %d]", o.MemTableSize, int64(maxMemTableSize))
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.CacheSize == 0 {
		o.CacheSize = defaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = defaultMemTableSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// pebbleLogger adapts a slog.Logger to pebble.Logger.
type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Info(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is how pebble reports damage it cannot go on from; it must not
// return.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}

// openPebble opens the pebble store in dir, creating it unless mustExist.
func openPebble(dir string, o Options, mustExist bool) (*pebble.DB, error) {
	cache := pebble.NewCache(o.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	po := &pebble.Options{
		Cache:        cache,
		MemTableSize: uint64(o.MemTableSize),
		// New stores start at the newest format, which also keeps the way
		// open to pebble v2 (it refuses the oldest formats).
		FormatMajorVersion: pebble.FormatNewest,
		Levels:             make([]pebble.LevelOptions, 7),
		ErrorIfNotExists:   mustExist,
		Logger:             pebbleLogger{o.Logger},
	}
	for i := range po.Levels {
		l := &po.Levels[i]
		// Dead-letter moves and Message look entries up by key; bloom
		// filters let each lookup skip the tables that do not hold it.
		l.FilterPolicy = bloom.FilterPolicy(10)
		l.FilterType = pebble.TableFilter
		if i > 0 {
			l.TargetFileSize = po.Levels[i-1].TargetFileSize * 2
		}
		l.EnsureDefaults()
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("fsm: open pebble in %s: %w", dir, err)
	}
	return db, nil
}
