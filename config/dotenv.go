package config

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
)

// LoadDotEnv sets the variables of the .env file at path through setenv
// (os.Setenv in the server), except those that lookup (os.LookupEnv) reports
// as already set: the real environment wins over the file. A missing file is
// not an error.
//
// The file holds KEY=VALUE lines, optionally prefixed by "export ". Blank
// lines and lines starting with # are ignored. A value may be
//   - unquoted: trimmed, and cut at a " #" that starts a comment;
//   - in single quotes: taken literally;
//   - in double quotes: with the escapes \n, \r, \t, \" and \\.
//
// A quoted value may be followed by a comment but not by other text, and
// must end on its line. There is no ${VAR} expansion. When a key appears
// twice the last value counts. A malformed line is an error that gives its
// line number; then nothing is set.
func LoadDotEnv(path string, setenv func(k, v string) error, lookup func(string) (string, bool)) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return fmt.Errorf("read env file: %w", err)
	}
	vars, err := parseDotEnv(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, v := range vars {
		if _, set := lookup(v.key); set {
			continue
		}
		if err := setenv(v.key, v.value); err != nil {
			return fmt.Errorf("set %s from %s: %w", v.key, path, err)
		}
	}
	return nil
}

type envVar struct {
	key, value string
}

// parseDotEnv parses the content of a .env file into its variables, each
// once, in the order they first appear, with the last value given.
func parseDotEnv(content string) ([]envVar, error) {
	content = strings.TrimPrefix(content, "\ufeff") // byte order mark some editors write
	var vars []envVar
	index := make(map[string]int)
	n := 0
	for line := range strings.Lines(content) {
		n++
		key, value, ok, err := parseDotEnvLine(line)
		if err != nil {
			// The line itself is not quoted: it may hold a secret.
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if !ok {
			continue
		}
		if i, seen := index[key]; seen {
			vars[i].value = value
			continue
		}
		index[key] = len(vars)
		vars = append(vars, envVar{key, value})
	}
	return vars, nil
}

// parseDotEnvLine parses one line; ok is false for a blank or comment line.
func parseDotEnvLine(line string) (key, value string, ok bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' {
		return "", "", false, nil
	}
	if rest, found := strings.CutPrefix(line, "export"); found && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		line = strings.TrimLeft(rest, " \t")
	}
	key, raw, found := strings.Cut(line, "=")
	if !found {
		return "", "", false, errors.New("expected KEY=VALUE")
	}
	key = strings.TrimSpace(key)
	if !validEnvKey(key) {
		return "", "", false, fmt.Errorf("%q is not a variable name (letters, digits and _, not starting with a digit)", key)
	}
	value, err = parseDotEnvValue(raw)
	if err != nil {
		return "", "", false, fmt.Errorf("%s: %w", key, err)
	}
	return key, value, true, nil
}

// parseDotEnvValue parses what follows the = of a line.
func parseDotEnvValue(raw string) (string, error) {
	v := strings.TrimLeft(raw, " \t")
	if v == "" {
		return "", nil
	}
	switch v[0] {
	case '\'':
		end := strings.IndexByte(v[1:], '\'')
		if end < 0 {
			return "", errors.New("unterminated single-quoted value")
		}
		return v[1 : 1+end], afterQuote(v[end+2:])
	case '"':
		var b strings.Builder
		for i := 1; i < len(v); i++ {
			switch c := v[i]; {
			case c == '"':
				return b.String(), afterQuote(v[i+1:])
			case c == '\\' && i+1 < len(v):
				i++
				switch e := v[i]; e {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case '"', '\\':
					b.WriteByte(e)
				default:
					// Unknown escapes stay as written, so a Windows path
					// such as "C:\data" survives.
					b.WriteByte('\\')
					b.WriteByte(e)
				}
			default:
				b.WriteByte(c)
			}
		}
		return "", errors.New("unterminated double-quoted value")
	}
	// Unquoted: a # starts a comment only after a space or tab, so that
	// values such as passwords and URL fragments may contain one.
	for i := 1; i < len(raw); i++ {
		if raw[i] == '#' && (raw[i-1] == ' ' || raw[i-1] == '\t') {
			raw = raw[:i]
			break
		}
	}
	return strings.TrimSpace(raw), nil
}

// afterQuote checks what follows a closing quote: nothing or a comment.
func afterQuote(rest string) error {
	rest = strings.TrimSpace(rest)
	if rest != "" && rest[0] != '#' {
		return errors.New("unexpected text after the closing quote")
	}
	return nil
}

func validEnvKey(k string) bool {
	if k == "" {
		return false
	}
	for i, c := range k {
		switch {
		case c == '_', 'A' <= c && c <= 'Z', 'a' <= c && c <= 'z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}
