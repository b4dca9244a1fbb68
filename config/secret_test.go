package config

import (
	"bytes"
	"encoding/hex"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestEnsureSecretKeyGeneratesOnceAndReuses(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data") // does not exist yet

	first := &Config{Environment: Development, DataDir: dir}
	if err := first.EnsureSecretKey(); err != nil {
		t.Fatalf("EnsureSecretKey() error = %v", err)
	}
	if raw, err := hex.DecodeString(string(first.SecretKey)); err != nil || len(raw) != 32 {
		t.Errorf("SecretKey = %q, want 32 hex-encoded bytes", first.SecretKey)
	}

	// The next start reads the same file.
	second := &Config{Environment: Development, DataDir: dir}
	if err := second.EnsureSecretKey(); err != nil {
		t.Fatalf("second EnsureSecretKey() error = %v", err)
	}
	if !bytes.Equal(first.SecretKey, second.SecretKey) {
		t.Errorf("second SecretKey = %q, want the first one %q", second.SecretKey, first.SecretKey)
	}

	path := filepath.Join(dir, "secret_key")
	assertMode(t, path, 0o600)
	assertMode(t, dir, 0o700|fs.ModeDir)
	content, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(content), string(first.SecretKey)+"\n"; got != want {
		t.Errorf("file content = %q, want %q", got, want)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("data dir holds %d entries, want only secret_key (no temporary files left)", len(entries))
	}

	// The key file is what SECRET_KEY_FILE would read: same key.
	cfg, err := Load(env(map[string]string{"SECRET_KEY_FILE": path}))
	if err != nil {
		t.Fatalf("Load(SECRET_KEY_FILE) error = %v", err)
	}
	if !bytes.Equal(cfg.SecretKey, first.SecretKey) {
		t.Errorf("Load(SECRET_KEY_FILE).SecretKey = %q, want %q", cfg.SecretKey, first.SecretKey)
	}
}

func TestEnsureSecretKeyGeneratesDistinctKeys(t *testing.T) {
	t.Parallel()
	a := &Config{Environment: Development, DataDir: t.TempDir()}
	b := &Config{Environment: Development, DataDir: t.TempDir()}
	if err := errors.Join(a.EnsureSecretKey(), b.EnsureSecretKey()); err != nil {
		t.Fatalf("EnsureSecretKey() error = %v", err)
	}
	if bytes.Equal(a.SecretKey, b.SecretKey) {
		t.Errorf("two data directories got the same key %q", a.SecretKey)
	}
}

func TestEnsureSecretKeyDoesNotGenerate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     Config
		file    string // content of secret_key, if any
		wantKey string
		wantErr string
	}{
		{"key already set", Config{Environment: Development, SecretKey: []byte(key32)}, "", key32, ""},
		{"production key set", Config{Environment: Production, SecretKey: []byte(key32)}, "", key32, ""},
		{"production without key", Config{Environment: Production}, "", "", "SECRET_KEY: is required in production"},
		{"existing file", Config{Environment: Development}, " " + key32 + "\n", key32, ""},
		{"existing file too short", Config{Environment: Development}, "abc\n", "", "is 3 bytes long, want at least 32; delete the file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "secret_key")
			if tt.file != "" {
				if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c := tt.cfg
			c.DataDir = dir
			err := c.EnsureSecretKey()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("EnsureSecretKey() error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("EnsureSecretKey() error = %v", err)
			}
			if string(c.SecretKey) != tt.wantKey {
				t.Errorf("SecretKey = %q, want %q", c.SecretKey, tt.wantKey)
			}
			content, _ := os.ReadFile(path)
			if string(content) != tt.file {
				t.Errorf("secret_key holds %q, want %q (untouched)", content, tt.file)
			}
		})
	}
}

func assertMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode(); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}
