package fsm

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/cockroachdb/pebble"
	"github.com/hashicorp/raft"
)

// Snapshot stream format, version 2: the applied index the state covers,
// then every key and value of the store, in key order, so the meta record
// (applied index, seq counter) travels with the state it describes.
//
//	magic "raftmq-fsm" version:byte applied:8 (big-endian)
//	(keyLen:uvarint key valueLen:uvarint value)*    keys strictly increasing, keyLen > 0
//	0:uvarint count:uvarint crc:4                    crc32c of all bytes before it, big-endian
//
// The end marker, count and checksum make a truncated or damaged stream an
// error instead of a smaller state.
const (
	snapMagic  = "raftmq-fsm"
	snapFormat = 2
	snapHdrLen = len(snapMagic) + 1 + 8

	maxSnapKeyLen     = 1 << 20
	maxSnapValueLen   = 1 << 31
	restoreBatchBytes = 4 << 20
	snapBufferSize    = 1 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Snapshot implements raft.FSM. It syncs the store, then takes a pebble
// snapshot, which is cheap; Persist does the copying.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	st := f.st
	if st == nil {
		return nil, ErrClosed
	}
	// Once this snapshot is stored raft truncates its log, and the log is
	// the only durable copy of the batches applied without fsync. A synced
	// write syncs the WAL, which holds every write the memtables do (older
	// WALs were synced when they were rotated).
	if err := st.db.LogData(nil, pebble.Sync); err != nil {
		return nil, fmt.Errorf("fsm: sync store for snapshot: %w", err)
	}
	st.acquire()
	return &snapshot{st: st, snap: st.db.NewSnapshot(), applied: f.applied.Load()}, nil
}

type snapshot struct {
	st      *state
	snap    *pebble.Snapshot
	applied uint64
	release sync.Once
}

// Persist writes the snapshot to sink, closing it, or cancelling it on error.
func (s *snapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		return errors.Join(fmt.Errorf("fsm: persist snapshot: %w", err), sink.Cancel())
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("fsm: persist snapshot: close sink: %w", err)
	}
	return nil
}

func (s *snapshot) write(w io.Writer) (err error) {
	cw := &crcWriter{w: w}
	bw := bufio.NewWriterSize(cw, snapBufferSize)
	bw.WriteString(snapMagic)
	bw.WriteByte(snapFormat)
	bw.Write(binary.BigEndian.AppendUint64(nil, s.applied))

	it, err := s.snap.NewIter(nil)
	if err != nil {
		return fmt.Errorf("iterate store: %w", err)
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	var n uint64
	var lenBuf []byte
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			return fmt.Errorf("read store: %w", err)
		}
		lenBuf = binary.AppendUvarint(lenBuf[:0], uint64(len(it.Key())))
		bw.Write(lenBuf)
		bw.Write(it.Key())
		lenBuf = binary.AppendUvarint(lenBuf[:0], uint64(len(v)))
		bw.Write(lenBuf)
		// bufio.Writer keeps its first error and returns it from Flush.
		if _, err := bw.Write(v); err != nil {
			return err
		}
		n++
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read store: %w", err)
	}
	lenBuf = binary.AppendUvarint(lenBuf[:0], 0)
	lenBuf = binary.AppendUvarint(lenBuf, n)
	bw.Write(lenBuf)
	if err := bw.Flush(); err != nil {
		return err
	}
	_, err = w.Write(binary.BigEndian.AppendUint32(nil, cw.crc))
	return err
}

// Release implements raft.FSMSnapshot.
func (s *snapshot) Release() {
	s.release.Do(func() {
		_ = s.snap.Close() // only fails on a closed snapshot, which Once rules out
		s.st.release()
	})
}

type crcWriter struct {
	w   io.Writer
	crc uint32
}

func (c *crcWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.crc = crc32.Update(c.crc, castagnoli, p[:n])
	return n, err
}

// Restore implements raft.FSM. It builds the snapshot's state in a new
// store beside the current one and switches to it only once it is
// complete and synced; on error the current state is untouched. Readers
// switch under the lock they read with, and the old store is closed and
// removed once no snapshot reads it. An attached observer is loaded again.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.applyMu.Lock()
	defer f.applyMu.Unlock()
	cur := f.st
	if cur == nil {
		return ErrClosed
	}
	gen, _ := storeGen(cur.name)
	name := storeName(gen + 1)
	path := filepath.Join(f.dir, name)
	if err := os.RemoveAll(path); err != nil { // a failed restore's leftover
		return fmt.Errorf("fsm: restore: %w", err)
	}
	st, err := f.build(name, path, rc)
	if err != nil {
		return fmt.Errorf("fsm: restore: %w", err)
	}
	if err := writeActive(f.dir, name); err != nil {
		// ACTIVE may or may not name the new store now; keep both on disk
		// and let the next Open remove whichever is not active.
		st.retire(false)
		return errors.Join(err, st.wait())
	}

	f.mu.Lock()
	f.st = st
	f.mu.Unlock()
	f.applied.Store(st.meta.applied)
	cur.retire(true)
	// Close waits for the old stores still read by a snapshot; forget
	// those already closed cleanly.
	f.old = slices.DeleteFunc(append(f.old, cur), (*state).closedCleanly)

	if f.obs != nil {
		if err := f.load(f.obs); err != nil {
			f.obs = nil
			return fmt.Errorf("fsm: restored, but the observer failed to reload and was detached: %w", err)
		}
	}
	return nil
}

// build creates a store at path holding the snapshot read from r, synced.
func (f *FSM) build(name, path string, r io.Reader) (*state, error) {
	db, err := openPebble(path, f.opts, false)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (*state, error) {
		err = errors.Join(err, db.Close())
		return nil, errors.Join(err, os.RemoveAll(path))
	}
	if err := readSnapshot(r, db); err != nil {
		return fail(err)
	}
	if err := db.LogData(nil, pebble.Sync); err != nil {
		return fail(fmt.Errorf("sync restored store: %w", err))
	}
	st, err := loadState(name, path, db)
	if err != nil {
		return fail(err)
	}
	return st, nil
}

// SnapshotAppliedIndex reads the applied index a snapshot stream's state
// covers from its header. It can be lower than raft's index for the
// snapshot: raft counts no-op and barrier entries, which never reach the
// FSM. The node compares it with AppliedIndex to decide whether a restart
// needs the snapshot.
func SnapshotAppliedIndex(r io.Reader) (uint64, error) {
	hdr := make([]byte, snapHdrLen)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, fmt.Errorf("fsm: read snapshot header: %w", err)
	}
	return parseSnapHeader(hdr)
}

func parseSnapHeader(hdr []byte) (uint64, error) {
	if string(hdr[:len(snapMagic)]) != snapMagic {
		return 0, fmt.Errorf("%w: not a raftmq fsm snapshot", errCorrupt)
	}
	if v := hdr[len(snapMagic)]; v != snapFormat {
		return 0, fmt.Errorf("%w: unknown snapshot format %d", errCorrupt, v)
	}
	return binary.BigEndian.Uint64(hdr[len(snapMagic)+1:]), nil
}

// readSnapshot writes the records of a snapshot stream to db, without
// fsync (build syncs once at the end).
func readSnapshot(r io.Reader, db *pebble.DB) error {
	sr := &snapReader{r: bufio.NewReaderSize(r, snapBufferSize)}
	hdr, err := sr.next(nil, uint64(snapHdrLen))
	if err != nil {
		return err
	}
	if _, err := parseSnapHeader(hdr); err != nil {
		return err
	}

	b := db.NewBatch()
	defer func() { b.Close() }()
	var key, prev, val []byte
	var count uint64
	for {
		n, err := sr.uvarint()
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if n > maxSnapKeyLen {
			return fmt.Errorf("%w: key of %d bytes", errCorrupt, n)
		}
		if key, err = sr.next(key, n); err != nil {
			return err
		}
		if count > 0 && bytes.Compare(key, prev) <= 0 {
			return fmt.Errorf("%w: keys out of order", errCorrupt)
		}
		if n, err = sr.uvarint(); err != nil {
			return err
		}
		if n > maxSnapValueLen {
			return fmt.Errorf("%w: value of %d bytes", errCorrupt, n)
		}
		if val, err = sr.next(val, n); err != nil {
			return err
		}
		if err := b.Set(key, val, nil); err != nil {
			return fmt.Errorf("write restored store: %w", err)
		}
		prev = append(prev[:0], key...)
		count++
		if b.Len() >= restoreBatchBytes {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("write restored store: %w", err)
			}
			b.Close()
			b = db.NewBatch()
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("write restored store: %w", err)
	}

	n, err := sr.uvarint()
	if err != nil {
		return err
	}
	if n != count {
		return fmt.Errorf("%w: snapshot says %d records, read %d", errCorrupt, n, count)
	}
	want := sr.crc
	var sum [4]byte
	if _, err := io.ReadFull(sr.r, sum[:]); err != nil {
		return truncated(err)
	}
	if got := binary.BigEndian.Uint32(sum[:]); got != want {
		return fmt.Errorf("%w: snapshot checksum %08x, computed %08x", errCorrupt, got, want)
	}
	if _, err := sr.r.ReadByte(); err != io.EOF {
		if err != nil {
			return fmt.Errorf("read snapshot: %w", err)
		}
		return fmt.Errorf("%w: bytes after the snapshot's checksum", errCorrupt)
	}
	return nil
}

// snapReader reads a snapshot stream, checksumming what it reads.
type snapReader struct {
	r   *bufio.Reader
	crc uint32
	one [1]byte
}

func (s *snapReader) ReadByte() (byte, error) {
	c, err := s.r.ReadByte()
	if err == nil {
		s.one[0] = c
		s.crc = crc32.Update(s.crc, castagnoli, s.one[:])
	}
	return c, err
}

func (s *snapReader) uvarint() (uint64, error) {
	v, err := binary.ReadUvarint(s)
	if err != nil {
		return 0, truncated(err)
	}
	return v, nil
}

// next reads n bytes into buf[:0]. It grows buf as data arrives, at most a
// buffer's worth ahead, so a corrupt length cannot allocate more than the
// stream holds.
func (s *snapReader) next(buf []byte, n uint64) ([]byte, error) {
	buf = buf[:0]
	for n > 0 {
		chunk := int(min(n, snapBufferSize))
		start := len(buf)
		if cap(buf)-start < chunk {
			buf = append(buf, make([]byte, chunk)...)[:start]
		}
		buf = buf[:start+chunk]
		if _, err := io.ReadFull(s.r, buf[start:]); err != nil {
			return nil, truncated(err)
		}
		n -= uint64(chunk)
	}
	s.crc = crc32.Update(s.crc, castagnoli, buf)
	return buf, nil
}

func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: snapshot truncated", errCorrupt)
	}
	return fmt.Errorf("read snapshot: %w", err)
}
