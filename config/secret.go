package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// secretKeyFile is the name of the development key file inside DataDir.
const secretKeyFile = "secret_key"

// EnsureSecretKey makes sure c.SecretKey is set. When it is already set it
// does nothing. Otherwise, in development, it reads DataDir/secret_key, or
// creates that file with a new random key (32 bytes from crypto/rand,
// hex-encoded, mode 0600, DataDir created with mode 0700), so that tokens
// signed before a restart stay valid after it. In production it returns an
// error and never generates a key.
//
// The key is the trimmed text of the file, exactly as SECRET_KEY_FILE would
// read it, so pointing SECRET_KEY_FILE at the same file keeps the same key.
func (c *Config) EnsureSecretKey() error {
	if len(c.SecretKey) > 0 {
		return nil
	}
	if c.Environment != Development {
		return fmt.Errorf("SECRET_KEY: is required in %s; a key is generated only in development", c.Environment)
	}
	path := filepath.Join(c.DataDir, secretKeyFile)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		key, err = createKeyFile(c.DataDir, path)
	}
	if err != nil {
		return err
	}
	c.SecretKey = key
	return nil
}

// readKeyFile reads a key file written by createKeyFile (or by hand).
func readKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read secret key: %w", err)
	}
	key := []byte(strings.TrimSpace(string(b)))
	if len(key) < MinSecretKeyLen {
		return nil, fmt.Errorf("secret key in %s is %d bytes long, want at least %d; delete the file to generate a new key",
			path, len(key), MinSecretKeyLen)
	}
	return key, nil
}

// createKeyFile writes a new random key to path and returns the key that
// path then holds.
//
// The file is written to a temporary name and then moved into place, so a
// crash never leaves a partial key behind. The move is a hard link rather
// than a rename because a link never replaces an existing file: when two
// processes start at once, the second keeps the first one's key instead of
// overwriting a key already in use. Where hard links are not supported it
// falls back to a rename.
func createKeyFile(dir, path string) ([]byte, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return nil, fmt.Errorf("generate secret key: %w", err)
	}
	text := hex.EncodeToString(raw)

	f, err := os.CreateTemp(dir, ".secret_key-*") // mode 0600
	if err != nil {
		return nil, fmt.Errorf("write secret key: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after the link; a no-op after the rename

	_, err = f.WriteString(text + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write secret key: %w", err)
	}

	err = os.Link(tmp, path)
	switch {
	case errors.Is(err, fs.ErrExist):
		return readKeyFile(path) // another process got there first
	case err != nil:
		if err := os.Rename(tmp, path); err != nil {
			return nil, fmt.Errorf("write secret key: %w", err)
		}
	}
	return []byte(text), nil
}
