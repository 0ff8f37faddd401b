package tlsconf

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// readFile reads path. The error is the bare cause (no such file,
// permission denied): callers put the path in their own context, and
// errors.Is(err, fs.ErrNotExist) still works.
func readFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return nil, pe.Err
	}
	return b, err
}

// pemBlocks decodes every PEM block in data. A file with none is the most
// common mistake (a DER file, the wrong path, an empty file), so it gets its
// own message.
func pemBlocks(data []byte) ([]*pem.Block, error) {
	var blocks []*pem.Block
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		blocks = append(blocks, b)
	}
	if len(blocks) == 0 {
		return nil, errors.New("no PEM data found")
	}
	return blocks, nil
}

// blockTypes lists the types of blocks, for messages like "found PRIVATE KEY".
func blockTypes(blocks []*pem.Block) string {
	types := make([]string, len(blocks))
	for i, b := range blocks {
		types[i] = b.Type
	}
	return strings.Join(types, ", ")
}

// parseCerts returns the CERTIFICATE blocks of data in order, parsed.
func parseCerts(data []byte) ([]*x509.Certificate, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	var certs []*x509.Certificate
	for _, b := range blocks {
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", len(certs)+1, err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		hint := ""
		if strings.Contains(blockTypes(blocks), "PRIVATE KEY") {
			hint = " (is this the key file?)"
		}
		return nil, fmt.Errorf("no CERTIFICATE block, found %s%s", blockTypes(blocks), hint)
	}
	return certs, nil
}

// parseKey returns the first private key in data. PKCS #8, PKCS #1 (RSA)
// and SEC 1 (EC) encodings are accepted, which covers what openssl, cfssl
// and cert-manager write. Encrypted keys are refused: the broker reloads
// without a prompt, so it could not ask for a passphrase.
func parseKey(data []byte) (crypto.Signer, error) {
	blocks, err := pemBlocks(data)
	if err != nil {
		return nil, err
	}
	for _, b := range blocks {
		if !strings.HasSuffix(b.Type, "PRIVATE KEY") {
			continue
		}
		if b.Type == "ENCRYPTED PRIVATE KEY" || strings.Contains(b.Headers["Proc-Type"], "ENCRYPTED") {
			return nil, errors.New("private key is encrypted; give an unencrypted key")
		}
		var key any
		switch b.Type {
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		default:
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		}
		if err != nil {
			return nil, fmt.Errorf("%s block: %w", b.Type, err)
		}
		switch k := key.(type) {
		case *rsa.PrivateKey:
			return k, nil
		case *ecdsa.PrivateKey:
			return k, nil
		case ed25519.PrivateKey:
			return k, nil
		default:
			return nil, fmt.Errorf("unsupported private key type %T", key)
		}
	}
	hint := ""
	if strings.Contains(blockTypes(blocks), "CERTIFICATE") {
		hint = " (is this the certificate file?)"
	}
	return nil, fmt.Errorf("no PRIVATE KEY block, found %s%s", blockTypes(blocks), hint)
}

// matches reports whether key is the private half of cert's public key.
func matches(cert *x509.Certificate, key crypto.Signer) bool {
	pub, ok := cert.PublicKey.(interface{ Equal(crypto.PublicKey) bool })
	return ok && pub.Equal(key.Public())
}

// loadKeyPair reads a certificate chain and its key. The errors name the
// file at fault.
func loadKeyPair(certPath, keyPath string) ([]*x509.Certificate, crypto.Signer, error) {
	data, err := readFile(certPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load certificate %s: %w", certPath, err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, nil, fmt.Errorf("load certificate %s: %w", certPath, err)
	}
	data, err = readFile(keyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("load key %s: %w", keyPath, err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, nil, fmt.Errorf("load key %s: %w", keyPath, err)
	}
	if !matches(certs[0], key) {
		return nil, nil, fmt.Errorf("load key %s: key does not match the first certificate in %s, which must be this node's", keyPath, certPath)
	}
	return certs, key, nil
}

// loadPool adds a bundle of trusted CA certificates to pool (a new pool
// when nil).
func loadPool(pool *x509.CertPool, path string) (*x509.CertPool, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle %s: %w", path, err)
	}
	certs, err := parseCerts(data)
	if err != nil {
		return nil, fmt.Errorf("load CA bundle %s: %w", path, err)
	}
	if pool == nil {
		pool = x509.NewCertPool()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
