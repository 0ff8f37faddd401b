package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The bounds of login work, as described in the package documentation.
const (
	busyWait    = 5 * time.Second  // longest wait for a turn at bcrypt
	cacheSize   = 1024             // remembered logins
	cacheTTL    = 10 * time.Minute // how long a login is remembered
	maxPassword = 72               // bytes of a password bcrypt reads
)

// verifier compares passwords with bcrypt hashes, a bounded number at a
// time, and remembers successes.
type verifier struct {
	sem  chan struct{} // a token per comparison running
	wait time.Duration // longest wait for a token
	now  func() time.Time

	key []byte // HMAC key of cache keys, random per process

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached
}

// cached is a remembered success.
type cached struct {
	hash    string // the hash the password matched: a new one does not
	expires time.Time
}

func newVerifier(concurrency int) *verifier {
	key := make([]byte, 32)
	rand.Read(key) // never fails (crypto/rand panics rather)
	return &verifier{
		sem:   make(chan struct{}, max(concurrency, 1)),
		wait:  busyWait,
		now:   time.Now,
		key:   key,
		cache: make(map[[sha256.Size]byte]cached),
	}
}

// cacheKey keys a login in the cache. A keyed hash, rather than the
// password, so that memory holds no plaintext and the cache cannot be
// checked without the key; the user's name is length-prefixed so that no
// two (user, password) pairs write the same bytes.
func (v *verifier) cacheKey(user, password string) [sha256.Size]byte {
	m := hmac.New(sha256.New, v.key)
	var n [binary.MaxVarintLen64]byte
	m.Write(n[:binary.PutUvarint(n[:], uint64(len(user)))])
	m.Write([]byte(user))
	m.Write([]byte(password))
	var k [sha256.Size]byte
	m.Sum(k[:0])
	return k
}

// remembered reports whether user logged in with password, against the
// same hash, less than cacheTTL ago.
func (v *verifier) remembered(k [sha256.Size]byte, hash string) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	c, ok := v.cache[k]
	if !ok {
		return false
	}
	if c.hash != hash || !v.now().Before(c.expires) {
		delete(v.cache, k)
		return false
	}
	return true
}

// remember records a successful login.
func (v *verifier) remember(k [sha256.Size]byte, hash string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	now := v.now()
	if _, ok := v.cache[k]; !ok && len(v.cache) >= cacheSize {
		for k, c := range v.cache {
			if !now.Before(c.expires) {
				delete(v.cache, k)
			}
		}
		// Still full: forget any one (map order is random). Whoever it
		// was pays bcrypt once more.
		for k := range v.cache {
			if len(v.cache) < cacheSize {
				break
			}
			delete(v.cache, k)
		}
	}
	v.cache[k] = cached{hash: hash, expires: now.Add(cacheTTL)}
}

// compare runs bcrypt when a turn comes, or returns ErrBusy after v.wait.
// It reports whether password matches hash.
func (v *verifier) compare(hash, password string) (bool, error) {
	select {
	case v.sem <- struct{}{}:
	default:
		t := time.NewTimer(v.wait)
		select {
		case v.sem <- struct{}{}:
			t.Stop()
		case <-t.C:
			return false, ErrBusy
		}
	}
	defer func() { <-v.sem }()
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, nil
}
