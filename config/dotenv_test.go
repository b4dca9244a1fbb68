package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseDotEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string
		want    []envVar
		wantErr string
	}{
		{"empty", "", nil, ""},
		{"blank lines and comments", "\n  \n# a comment\n   # indented comment\n", nil, ""},
		{"plain", "A=1\nB = two \n", []envVar{{"A", "1"}, {"B", "two"}}, ""},
		{"empty value", "A=\nB= \n", []envVar{{"A", ""}, {"B", ""}}, ""},
		{"export", "export A=1\nexport\tB=2\nexportC=3\n", []envVar{{"A", "1"}, {"B", "2"}, {"exportC", "3"}}, ""},
		{"trailing comment", "A=1 # the answer\nB=x\t# tab\nC= # only a comment", []envVar{{"A", "1"}, {"B", "x"}, {"C", ""}}, ""},
		{"hash inside value", "A=pass#word\nB=#start\nC=http://h/p#frag", []envVar{{"A", "pass#word"}, {"B", "#start"}, {"C", "http://h/p#frag"}}, ""},
		{"equals inside value", "A=postgres://u:p@h/db?sslmode=disable&x=y", []envVar{{"A", "postgres://u:p@h/db?sslmode=disable&x=y"}}, ""},
		{"single quotes", `A='  literal \n # not a comment '`, []envVar{{"A", `  literal \n # not a comment `}}, ""},
		{"double quotes", `A="line1\nline2 \"quoted\" back\\slash # kept"`, []envVar{{"A", "line1\nline2 \"quoted\" back\\slash # kept"}}, ""},
		{"tab and carriage return escapes", `A="a\tb\rc"`, []envVar{{"A", "a\tb\rc"}}, ""},
		{"text after double quote", `A="abc" def`, nil, "line 1: A: unexpected text after the closing quote"},
		{"unknown escape kept", `A="C:\data"`, []envVar{{"A", `C:\data`}}, ""},
		{"quoted then comment", `A="x" # comment` + "\n" + `B='y'   # comment`, []envVar{{"A", "x"}, {"B", "y"}}, ""},
		{"empty quotes", `A=""` + "\n" + `B=''`, []envVar{{"A", ""}, {"B", ""}}, ""},
		{"crlf and bom", "\ufeffA=1\r\nB=\"2\"\r\n", []envVar{{"A", "1"}, {"B", "2"}}, ""},
		{"last value wins", "A=1\nB=2\nA=3\n", []envVar{{"A", "3"}, {"B", "2"}}, ""},
		{"missing equals", "A=1\n\nJUSTAWORD\n", nil, "line 3: expected KEY=VALUE"},
		{"bad name", "A=1\n1A=2\n", nil, `line 2: "1A" is not a variable name`},
		{"name with space", "MY VAR=1", nil, `line 1: "MY VAR" is not a variable name`},
		{"empty name", "=1", nil, `line 1: "" is not a variable name`},
		{"unterminated double quote", "A=1\nB=\"abc\nC=2", nil, "line 2: B: unterminated double-quoted value"},
		{"escaped final quote", `A="abc\"`, nil, "line 1: A: unterminated double-quoted value"},
		{"unterminated single quote", "A='abc", nil, "line 1: A: unterminated single-quoted value"},
		{"text after quote", `A='abc'def`, nil, "line 1: A: unexpected text after the closing quote"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseDotEnv(tt.content)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("parseDotEnv(%q) error = %v, want %q", tt.content, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseDotEnv(%q) error = %v", tt.content, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseDotEnv(%q) = %q, want %q", tt.content, got, tt.want)
			}
		})
	}
}

// fakeEnv is an environment for LoadDotEnv.
type fakeEnv map[string]string

func (e fakeEnv) set(k, v string) error {
	e[k] = v
	return nil
}

func (e fakeEnv) lookup(k string) (string, bool) {
	v, ok := e[k]
	return v, ok
}

func TestLoadDotEnv(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content string // "" for no file at all
		env     fakeEnv
		want    fakeEnv
		wantErr string
	}{
		{
			name:    "sets variables",
			content: "# local settings\nexport API_PORT=9000\nSECRET_KEY=\"abc def\"\n",
			env:     fakeEnv{},
			want:    fakeEnv{"API_PORT": "9000", "SECRET_KEY": "abc def"},
		},
		{
			name:    "real environment wins",
			content: "API_PORT=9000\nLOG_LEVEL=debug\nLOG_LEVEL=warn\n",
			env:     fakeEnv{"API_PORT": "8080", "LOG_LEVEL": ""},
			want:    fakeEnv{"API_PORT": "8080", "LOG_LEVEL": ""},
		},
		{
			name: "missing file",
			env:  fakeEnv{"A": "1"},
			want: fakeEnv{"A": "1"},
		},
		{
			name:    "malformed line sets nothing",
			content: "A=1\nB='2\n",
			env:     fakeEnv{},
			want:    fakeEnv{},
			wantErr: ".env: line 2: B: unterminated single-quoted value",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), ".env")
			if tt.content != "" {
				if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			err := LoadDotEnv(path, tt.env.set, tt.env.lookup)
			if tt.wantErr != "" {
				if err == nil || !strings.HasSuffix(err.Error(), tt.wantErr) {
					t.Fatalf("LoadDotEnv() error = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatalf("LoadDotEnv() error = %v", err)
			}
			if !reflect.DeepEqual(tt.env, tt.want) {
				t.Errorf("environment after LoadDotEnv() = %v, want %v", tt.env, tt.want)
			}
		})
	}
}

func TestLoadDotEnvErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, ".env")
	if err := os.WriteFile(path, []byte("A=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errSet := errors.New("setenv failed")
	err := LoadDotEnv(path, func(k, v string) error { return errSet }, fakeEnv{}.lookup)
	if !errors.Is(err, errSet) || !strings.Contains(err.Error(), "set A from") {
		t.Errorf("LoadDotEnv() with failing setenv error = %v, want it to wrap %v", err, errSet)
	}
	// A directory is not a readable file, and not a missing one.
	if err := LoadDotEnv(dir, fakeEnv{}.set, fakeEnv{}.lookup); err == nil {
		t.Error("LoadDotEnv(directory) error = nil, want a read error")
	}
}

func TestLoadDotEnvThenLoad(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), ".env")
	content := "ENVIRONMENT=production\nSECRET_KEY='" + key32 + "'\nCORS_ORIGINS=https://app.example.com # the frontend\n" +
		"SMTP_URL=smtp://smtp.example.com\nMAIL_FROM='Obsqra <noreply@example.com>'\nPUBLIC_APP_URL=https://app.example.com\nPUBLIC_API_URL=https://api.example.com\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	e := fakeEnv{"API_PORT": "9999"}
	if err := LoadDotEnv(path, e.set, e.lookup); err != nil {
		t.Fatalf("LoadDotEnv() error = %v", err)
	}
	cfg, err := Load(env(e))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if cfg.Environment != Production || string(cfg.SecretKey) != key32 || cfg.APIPort != 9999 ||
		!reflect.DeepEqual(cfg.CORSOrigins, []string{"https://app.example.com"}) {
		t.Errorf("Load() after LoadDotEnv() = %+v", cfg)
	}
}
