package config

import (
	"bufio"
	"os"
	"reflect"
	"regexp"
	"slices"
	"testing"
)

// testOnlyVariables are documented in .env.example but read by tests, not
// by Load.
var testOnlyVariables = []string{"TEST_DATABASE_URL", "REQUIRE_POSTGRES"}

// TestEnvExample keeps .env.example and Variables in step: every variable
// appears as a commented-out line with its default, and the file names no
// variable that Load does not read.
func TestEnvExample(t *testing.T) {
	t.Parallel()
	f, err := os.Open("../.env.example")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	assignment := regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=(.*)$`)
	inFile := make(map[string]string)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := assignment.FindStringSubmatch(sc.Text()); m != nil {
			inFile[m[1]] = m[2]
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}

	known := make(map[string]bool)
	for _, v := range Variables() {
		known[v.Name] = true
		def, ok := inFile[v.Name]
		switch {
		case !ok:
			t.Errorf(".env.example does not mention %s; add a line # %s=%s", v.Name, v.Name, v.Default)
		case def != v.Default:
			t.Errorf(".env.example gives %s=%s, want the default %s=%s", v.Name, def, v.Name, v.Default)
		}
	}
	for name := range inFile {
		if !known[name] && !slices.Contains(testOnlyVariables, name) {
			t.Errorf(".env.example mentions %s, which is not in Variables()", name)
		}
	}
}

// TestVariablesMatchLoad checks that Variables lists exactly what Load reads
// and that setting every variable to its documented default changes nothing.
func TestVariablesMatchLoad(t *testing.T) {
	t.Parallel()
	documented := make(map[string]string)
	for _, v := range Variables() {
		if _, dup := documented[v.Name]; dup {
			t.Errorf("Variables() lists %s twice", v.Name)
		}
		if v.Description == "" {
			t.Errorf("Variables(): %s has no description", v.Name)
		}
		documented[v.Name] = v.Default
	}

	read := make(map[string]bool)
	implicit, err := Load(func(k string) string {
		read[k] = true
		return ""
	})
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	for name := range read {
		if _, ok := documented[name]; !ok {
			t.Errorf("Load reads %s, which Variables() does not list", name)
		}
	}
	for name := range documented {
		if !read[name] {
			t.Errorf("Variables() lists %s, which Load does not read", name)
		}
	}

	explicit, err := Load(env(documented))
	if err != nil {
		t.Fatalf("Load(documented defaults) error = %v", err)
	}
	if !reflect.DeepEqual(explicit, implicit) {
		t.Errorf("Load(documented defaults) = %+v, want the defaults %+v", explicit, implicit)
	}
}
