package store

// The rule for rolling deploys, as a check over the migration files: while
// a deploy replaces instances one by one, the previous release keeps
// running against the schema the new release migrated. So a migration may
// only expand the schema (add tables, nullable columns, columns with a
// default, indexes); what the previous release still reads or writes is
// dropped, renamed, retyped or tightened only in a later release, once no
// running release uses it (a contract migration), and such a file says so
// with a line
//
//	-- contract: <the earlier release that stopped using it, and what>
//
// The check reads each migration's Up section (Down sections run only by
// hand, to go back), with comments, string literals and dollar-quoted
// bodies blanked out, and refuses in a migration newer than
// rollingBaseline, unless the file carries the marker, a statement that
// changes a table, column, view, sequence, type or index the migration did
// not create in these ways:
//
//   - DROP TABLE, VIEW, MATERIALIZED VIEW, SEQUENCE, TYPE, INDEX or SCHEMA;
//   - ALTER TABLE … DROP [COLUMN] (DROP CONSTRAINT relaxes: allowed);
//   - RENAME of a table, column, view, sequence or type (an index's name
//     is nobody's business: ALTER INDEX … RENAME is allowed);
//   - ALTER [COLUMN] … TYPE or SET DATA TYPE;
//   - ALTER [COLUMN] … DROP DEFAULT (the previous release's inserts leave
//     the column out and count on the default);
//   - ALTER [COLUMN] … SET NOT NULL, unless the same migration gives the
//     column a default first;
//   - ADD [COLUMN] … NOT NULL without a DEFAULT;
//   - ADD CONSTRAINT, PRIMARY KEY, UNIQUE, CHECK, FOREIGN KEY or EXCLUDE,
//     and CREATE UNIQUE INDEX: they refuse writes the previous release may
//     make.
//
// Both dialects are checked alike, as their folders move in step; on
// SQLite, where one instance runs, a table rebuild (CREATE, copy, DROP,
// RENAME) still takes the marker, as its PostgreSQL twin will.

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/pressly/goose/v3"
)

// rollingBaseline is the newest migration written before the rule: the
// check starts after it. Migrations 1-6 predate the rule (and pass it
// anyway, which TestMigrationsAreSafeForRollingDeploys checks too). Never
// raise it to let a migration through: mark the migration a contract.
const rollingBaseline = 6

// contractMarker is the line that lets a migration contract the schema;
// its text names the earlier release that stopped using what it changes.
var contractMarker = regexp.MustCompile(`(?m)^[ \t]*--[ \t]*contract:(.*)$`)

// checkRolling returns a problem for every migration of fsys (goose's
// NNNNN_name.sql files) newer than baseline that breaks the release before
// it, as described above.
func checkRolling(fsys fs.FS, baseline int64) ([]error, error) {
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil {
		return nil, err
	}
	var problems []error
	for _, name := range names {
		version, err := goose.NumericComponent(name)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		if version <= baseline {
			continue
		}
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			return nil, err
		}
		for _, p := range checkMigration(string(b)) {
			problems = append(problems, fmt.Errorf("%s: %s", name, p))
		}
	}
	return problems, nil
}

// checkMigration returns what in one migration's text breaks the release
// before it: nothing when the file is marked a contract.
func checkMigration(text string) []string {
	if m := contractMarker.FindStringSubmatch(text); m != nil {
		if strings.TrimSpace(m[1]) == "" {
			return []string{"its -- contract: line names no release; say which earlier release stopped using what it changes"}
		}
		return nil
	}
	up, ok := upSection(text)
	if !ok {
		return []string{"has no -- +goose Up section"}
	}
	c := &migrationCheck{created: map[string]bool{}, defaults: map[string]bool{}}
	for i, stmt := range statements(up) {
		for _, p := range c.statement(stmt) {
			c.problems = append(c.problems, fmt.Sprintf("statement %d (%s): %s", i+1, clip(stmt, 80), p))
		}
	}
	return c.problems
}

// upSection returns the lines between -- +goose Up and -- +goose Down (or
// the end).
func upSection(text string) (string, bool) {
	var b strings.Builder
	in, found := false, false
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		switch strings.Join(strings.Fields(sc.Text()), " ") {
		case "-- +goose Up":
			in, found = true, true
			continue
		case "-- +goose Down":
			in = false
			continue
		}
		if in {
			b.WriteString(sc.Text())
			b.WriteByte('\n')
		}
	}
	return b.String(), found
}

// dollarTag matches the opening of a dollar-quoted string: $$ or $tag$.
var dollarTag = regexp.MustCompile(`^\$(?:[A-Za-z_][A-Za-z_0-9]*)?\$`)

// statements splits SQL into statements at semicolons, after blanking out
// comments, string literals (each becomes an empty literal) and
// dollar-quoted bodies (each becomes an empty $$ body), whose words are not
// the statement's; each statement comes upper-cased
// with its white space collapsed. A trigger body split at its inner
// semicolons gives harmless pieces.
func statements(sql string) []string {
	var out []string
	var cur strings.Builder
	flush := func() {
		if s := strings.Join(strings.Fields(cur.String()), " "); s != "" {
			out = append(out, strings.ToUpper(s))
		}
		cur.Reset()
	}
	for i := 0; i < len(sql); {
		rest := sql[i:]
		switch {
		case strings.HasPrefix(rest, "--"):
			end := strings.IndexByte(rest, '\n')
			if end < 0 {
				end = len(rest)
			}
			cur.WriteByte(' ')
			i += end
		case strings.HasPrefix(rest, "/*"):
			end := strings.Index(rest[2:], "*/")
			if end < 0 {
				end = len(rest)
			} else {
				end += 4
			}
			cur.WriteByte(' ')
			i += end
		case rest[0] == '\'':
			j := 1
			for j < len(rest) {
				if rest[j] == '\'' {
					if j+1 < len(rest) && rest[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			cur.WriteString("''")
			i += j + 1
		case rest[0] == '$' && dollarTag.MatchString(rest):
			tag := dollarTag.FindString(rest)
			end := strings.Index(rest[len(tag):], tag)
			if end < 0 {
				end = len(rest)
			} else {
				end += 2 * len(tag)
			}
			cur.WriteString("$$")
			i += end
		case rest[0] == ';':
			flush()
			i++
		default:
			cur.WriteByte(rest[0])
			i++
		}
	}
	flush()
	return out
}

// migrationCheck is what one migration's check has seen so far.
type migrationCheck struct {
	// created holds the tables, views, sequences, types and indexes the
	// migration creates: the previous release knows nothing of them.
	created map[string]bool
	// defaults holds the columns ("table.column") the migration gives a
	// default.
	defaults map[string]bool
	problems []string
}

// Patterns over upper-cased statements. An object name is an identifier,
// maybe quoted or qualified by its schema.
const objectName = `((?:"[^"]+"|[A-Z_][A-Z_0-9$]*)(?:\.(?:"[^"]+"|[A-Z_][A-Z_0-9$]*))?)`

var (
	createObject  = regexp.MustCompile(`^CREATE (?:OR REPLACE )?(?:(?:TEMP|TEMPORARY|UNLOGGED|GLOBAL|LOCAL) )*(TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE|TYPE|INDEX|UNIQUE INDEX) (?:CONCURRENTLY )?(?:IF NOT EXISTS )?` + objectName)
	uniqueIndexOn = regexp.MustCompile(`^CREATE UNIQUE INDEX .*? ON (?:ONLY )?` + objectName)
	dropObject    = regexp.MustCompile(`^DROP (TABLE|VIEW|MATERIALIZED VIEW|SEQUENCE|TYPE|INDEX|SCHEMA) (?:CONCURRENTLY )?(?:IF EXISTS )?(.*?)(?: CASCADE| RESTRICT)?$`)
	alterTable    = regexp.MustCompile(`^ALTER TABLE (?:IF EXISTS )?(?:ONLY )?` + objectName + ` (.*)$`)
	alterOther    = regexp.MustCompile(`^ALTER (VIEW|MATERIALIZED VIEW|SEQUENCE|TYPE) (?:IF EXISTS )?` + objectName + ` (.*)$`)

	renameAction      = regexp.MustCompile(`\bRENAME\b`)
	dropColumn        = regexp.MustCompile(`^DROP (?:COLUMN )?(?:IF EXISTS )?` + objectName)
	addTightening     = regexp.MustCompile(`^ADD (CONSTRAINT|PRIMARY KEY|UNIQUE|CHECK|FOREIGN KEY|EXCLUDE)\b`)
	addColumn         = regexp.MustCompile(`^ADD (?:COLUMN )?(?:IF NOT EXISTS )?` + objectName + `(.*)$`)
	alterColumn       = regexp.MustCompile(`^ALTER (?:COLUMN )?` + objectName + ` (.*)$`)
	columnType        = regexp.MustCompile(`^(?:SET DATA )?TYPE\b`)
	notNullNoDefault  = regexp.MustCompile(`\bNOT NULL\b`)
	hasDefault        = regexp.MustCompile(`\bDEFAULT\b`)
	generatedOrSerial = regexp.MustCompile(`\bGENERATED\b|\b(?:SMALL|BIG)?SERIAL\b`)
)

// statement checks one statement and records what it creates.
func (c *migrationCheck) statement(s string) []string {
	if m := createObject.FindStringSubmatch(s); m != nil {
		if m[1] == "UNIQUE INDEX" {
			if on := uniqueIndexOn.FindStringSubmatch(s); on != nil && !c.created[unquote(on[1])] {
				c.created[unquote(m[2])] = true
				return []string{fmt.Sprintf("adds a unique index on %s, which may refuse writes the previous release makes", unquote(on[1]))}
			}
		}
		c.created[unquote(m[2])] = true
		return nil
	}
	if m := dropObject.FindStringSubmatch(s); m != nil {
		var out []string
		for _, name := range strings.Split(m[2], ",") {
			if name = unquote(strings.TrimSpace(name)); name != "" && !c.created[name] {
				out = append(out, fmt.Sprintf("drops %s %s, which the previous release may still use", strings.ToLower(m[1]), name))
			}
		}
		return out
	}
	if m := alterOther.FindStringSubmatch(s); m != nil {
		if !c.created[unquote(m[2])] && renameAction.MatchString(m[3]) {
			return []string{fmt.Sprintf("renames in %s %s, which the previous release uses by its names", strings.ToLower(m[1]), unquote(m[2]))}
		}
		return nil
	}
	m := alterTable.FindStringSubmatch(s)
	if m == nil {
		return nil
	}
	table := unquote(m[1])
	if c.created[table] {
		return nil
	}
	var out []string
	for _, action := range splitTopLevel(m[2]) {
		if p := c.tableAction(table, action); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// tableAction checks one action of an ALTER TABLE of a table the
// migration did not create.
func (c *migrationCheck) tableAction(table, a string) string {
	switch {
	case renameAction.MatchString(a):
		return fmt.Sprintf("renames %s or one of its columns, which the previous release uses by their names", table)
	case strings.HasPrefix(a, "DROP CONSTRAINT"):
		return ""
	case strings.HasPrefix(a, "DROP "):
		col := a
		if m := dropColumn.FindStringSubmatch(a); m != nil {
			col = unquote(m[1])
		}
		return fmt.Sprintf("drops column %s.%s, which the previous release may still read or write", table, col)
	case addTightening.MatchString(a):
		return fmt.Sprintf("adds a constraint to %s, which may refuse writes the previous release makes", table)
	}
	if m := addColumn.FindStringSubmatch(a); m != nil {
		col, def := unquote(m[1]), m[2]
		if hasDefault.MatchString(def) || generatedOrSerial.MatchString(def) {
			c.defaults[table+"."+col] = true
			return ""
		}
		if notNullNoDefault.MatchString(def) {
			return fmt.Sprintf("adds %s.%s NOT NULL without a default, so the previous release's inserts fail", table, col)
		}
		return ""
	}
	if m := alterColumn.FindStringSubmatch(a); m != nil {
		col, change := unquote(m[1]), m[2]
		key := table + "." + col
		switch {
		case columnType.MatchString(change):
			return fmt.Sprintf("changes the type of %s, which the previous release reads and writes as it was", key)
		case strings.HasPrefix(change, "SET DEFAULT"):
			c.defaults[key] = true
		case strings.HasPrefix(change, "DROP DEFAULT"):
			return fmt.Sprintf("drops the default of %s, on which the previous release's inserts may count", key)
		case strings.HasPrefix(change, "SET NOT NULL") && !c.defaults[key]:
			return fmt.Sprintf("sets %s NOT NULL without giving it a default first, so the previous release's inserts may fail", key)
		}
	}
	return ""
}

// splitTopLevel splits an ALTER TABLE's actions at the commas outside
// parentheses.
func splitTopLevel(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, r := range s {
		switch r {
		case '(':
			depth++
		case ')':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, strings.TrimSpace(s[start:i]))
				start = i + 1
			}
		}
	}
	return append(out, strings.TrimSpace(s[start:]))
}

// unquote returns an object name in lower case without its quotes, as the
// messages and the sets above key it.
func unquote(s string) string { return strings.ToLower(strings.ReplaceAll(s, `"`, "")) }

// clip returns s cut to n bytes with an ellipsis.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// TestMigrationsAreSafeForRollingDeploys runs the check over the migrations
// the binary embeds, on both dialects, which must hold the same versions.
func TestMigrationsAreSafeForRollingDeploys(t *testing.T) {
	t.Parallel()
	var versions [][]string
	for _, d := range []*dialect{postgresDialect, sqliteDialect} {
		fsys, err := d.migrationFS()
		if err != nil {
			t.Fatal(err)
		}
		names, err := fs.Glob(fsys, "*.sql")
		if err != nil || len(names) < rollingBaseline {
			t.Fatalf("%s: %d migrations (%v), want at least the %d of the baseline", d.name, len(names), err, rollingBaseline)
		}
		var vs []string
		for _, n := range names {
			v, _ := goose.NumericComponent(n)
			vs = append(vs, fmt.Sprint(v))
		}
		versions = append(versions, vs)
		problems, err := checkRolling(fsys, rollingBaseline)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("%s migration %v\n(see README, Rolling deploys: expand now; drop, rename or tighten in a later release, in a file marked -- contract: <release>)", d.name, p)
		}
		// The migrations up to the baseline pass too: the check refuses
		// nothing the schema was built with.
		all, err := checkRolling(fsys, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range all[:len(all)-len(problems)] {
			t.Errorf("%s migration %v, up to the baseline: want no problem", d.name, p)
		}
	}
	if !slices.Equal(versions[0], versions[1]) {
		t.Errorf("postgres migrations %v, sqlite %v: the folders must move in step", versions[0], versions[1])
	}
}

// TestRollingCheckAtTheBaseline runs the check over the fixtures in
// testdata/rolling: the same column drop is let through in migration 6,
// the baseline, refused in migration 7, one past it, and let through in
// migration 8, which is marked a contract.
func TestRollingCheckAtTheBaseline(t *testing.T) {
	t.Parallel()
	fsys := os.DirFS(filepath.Join("testdata", "rolling"))
	problems, err := checkRolling(fsys, 6)
	if err != nil {
		t.Fatal(err)
	}
	want := "00007_drop_legacy_name.sql: statement 1 (ALTER TABLE USERS DROP COLUMN LEGACY_NAME): drops column users.legacy_name, " +
		"which the previous release may still read or write"
	if len(problems) != 1 || problems[0].Error() != want {
		t.Errorf("checkRolling(testdata/rolling, 6) = %q, want only %q", problems, want)
	}
	// With the baseline one lower, migration 6 is checked too.
	problems, err = checkRolling(fsys, 5)
	if err != nil || len(problems) != 2 || !strings.HasPrefix(problems[0].Error(), "00006_") {
		t.Errorf("checkRolling(testdata/rolling, 5) = %q, %v, want migrations 6 and 7 refused", problems, err)
	}
}

// TestRollingCheck: what each rule refuses and what it lets through.
func TestRollingCheck(t *testing.T) {
	t.Parallel()
	up := func(sql string) string { return "-- +goose Up\n" + sql + "\n-- +goose Down\nDROP TABLE users;\n" }
	refused := []struct{ name, sql, want string }{
		{"drop table", "DROP TABLE sessions;", "drops table sessions"},
		{"drop tables", "CREATE TABLE new_t (a int);\nDROP TABLE IF EXISTS new_t, sessions CASCADE;", "drops table sessions"},
		{"drop view", "DROP VIEW user_summary;", "drops view user_summary"},
		{"drop index", "DROP INDEX users_email_idx;", "drops index users_email_idx"},
		{"drop column", "ALTER TABLE users DROP COLUMN full_name;", "drops column users.full_name"},
		{"drop without COLUMN", "alter table Users drop full_name;", "drops column users.full_name"},
		{"drop column if exists", `ALTER TABLE "users" DROP COLUMN IF EXISTS "full_name";`, "drops column users.full_name"},
		{"second action of an ALTER", "ALTER TABLE users ADD COLUMN nick text, DROP COLUMN full_name;", "drops column users.full_name"},
		{"rename table", "ALTER TABLE users RENAME TO accounts;", "renames users"},
		{"rename column", "ALTER TABLE users RENAME COLUMN full_name TO name;", "renames users"},
		{"rename without COLUMN", "ALTER TABLE users RENAME full_name TO name;", "renames users"},
		{"rename type value", "ALTER TYPE tx_status RENAME VALUE 'A' TO 'B';", "renames in type tx_status"},
		{"column type", "ALTER TABLE users ALTER COLUMN full_name TYPE varchar(100);", "changes the type of users.full_name"},
		{"column type, short form", "ALTER TABLE users ALTER full_name SET DATA TYPE varchar(100) USING full_name::varchar;", "changes the type of users.full_name"},
		{"set not null", "ALTER TABLE users ALTER COLUMN full_name SET NOT NULL;", "sets users.full_name NOT NULL without giving it a default"},
		{"default after not null", "ALTER TABLE users ALTER COLUMN nick SET NOT NULL;\nALTER TABLE users ALTER COLUMN nick SET DEFAULT '';", "sets users.nick NOT NULL"},
		{"not null column without default", "ALTER TABLE users ADD COLUMN nick text NOT NULL;", "adds users.nick NOT NULL without a default"},
		{"drop default", "ALTER TABLE users ALTER COLUMN role DROP DEFAULT;", "drops the default of users.role"},
		{"add check", "ALTER TABLE users ADD CONSTRAINT users_name_short CHECK (length(full_name) < 100);", "adds a constraint to users"},
		{"add unique", "ALTER TABLE users ADD UNIQUE (full_name);", "adds a constraint to users"},
		{"unique index", "CREATE UNIQUE INDEX users_name_unique ON users (full_name);", "adds a unique index on users"},
		{"sqlite rebuild", "CREATE TABLE users_new (id INTEGER PRIMARY KEY);\nINSERT INTO users_new SELECT id FROM users;\nDROP TABLE users;\nALTER TABLE users_new RENAME TO users;", "drops table users"},
		{"empty contract line", "-- contract:\nDROP TABLE sessions;", "names no release"},
		{"no Up section", "DROP TABLE sessions;", "has no -- +goose Up section"},
	}
	for _, tt := range refused {
		text := up(tt.sql)
		if tt.name == "no Up section" {
			text = tt.sql
		}
		problems := checkMigration(text)
		if len(problems) != 1 || !strings.Contains(problems[0], tt.want) {
			t.Errorf("%s: checkMigration(%q) = %q, want one problem containing %q", tt.name, tt.sql, problems, tt.want)
		}
	}

	allowed := []struct{ name, sql string }{
		{"new table", "CREATE TABLE wallets (id bigserial PRIMARY KEY, address text NOT NULL);"},
		{"anything on a new table", "CREATE TABLE IF NOT EXISTS t (a int);\nALTER TABLE t ALTER COLUMN a SET NOT NULL, ADD CONSTRAINT c CHECK (a > 0);\nCREATE UNIQUE INDEX t_a ON t (a);\nALTER TABLE t RENAME TO t2;"},
		{"drop what was created", "CREATE INDEX users_nick_idx ON users (nick);\nDROP INDEX users_nick_idx;"},
		{"nullable column", "ALTER TABLE users ADD COLUMN nick text;"},
		{"column with a default", "ALTER TABLE users ADD COLUMN IF NOT EXISTS score integer NOT NULL DEFAULT 0 CHECK (score >= 0);"},
		{"generated column", "ALTER TABLE users ADD COLUMN email_lower text NOT NULL GENERATED ALWAYS AS (lower(email)) STORED;"},
		{"default, then not null", "ALTER TABLE users ALTER COLUMN nick SET DEFAULT '';\nUPDATE users SET nick = '' WHERE nick IS NULL;\nALTER TABLE users ALTER COLUMN nick SET NOT NULL;"},
		{"default and not null in one statement", "ALTER TABLE users ALTER COLUMN nick SET DEFAULT '', ALTER COLUMN nick SET NOT NULL;"},
		{"relaxing", "ALTER TABLE users DROP CONSTRAINT users_name_short, ALTER COLUMN nick DROP NOT NULL;"},
		{"an index", "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_created_idx ON users (created_at);"},
		{"index rename", "ALTER INDEX users_created_idx RENAME TO users_created_at_idx;"},
		{"data", "UPDATE events SET kind = payload->>'kind' WHERE topic = 'x';\nINSERT INTO event_retention VALUES (1, 0);\nDELETE FROM login_throttle;"},
		{"words in comments and strings", "-- we will DROP TABLE sessions later\n/* ALTER TABLE users DROP COLUMN x; */\nINSERT INTO notes VALUES ('DROP TABLE users; ALTER TABLE users RENAME TO x');"},
		{"a function body", "-- +goose StatementBegin\nCREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $body$\nBEGIN\n  DROP TABLE scratch;\n  RETURN NULL;\nEND $body$;\n-- +goose StatementEnd"},
		{"a sqlite trigger", "CREATE TRIGGER t_no_update BEFORE UPDATE ON t\nBEGIN SELECT RAISE(ABORT, 'no; DROP TABLE t'); END;"},
		{"marked contract", "-- contract: v1.4 stopped reading users.full_name\nALTER TABLE users DROP COLUMN full_name;"},
	}
	for _, tt := range allowed {
		if problems := checkMigration(up(tt.sql)); len(problems) != 0 {
			t.Errorf("%s: checkMigration(%q) = %q, want none", tt.name, tt.sql, problems)
		}
	}

	// The Down section is not checked; an fs with only such files passes.
	fsys := fstest.MapFS{"00009_x.sql": {Data: []byte(up("ALTER TABLE users ADD COLUMN nick text;"))}}
	if problems, err := checkRolling(fsys, 6); err != nil || len(problems) != 0 {
		t.Errorf("checkRolling(a Down that drops) = %q, %v, want none", problems, err)
	}
	if _, err := checkRolling(fstest.MapFS{"x.sql": {}}, 6); err == nil {
		t.Errorf("checkRolling(a file without a version) = nil error, want one")
	}
}

// TestPreviousReleaseMigratesAfterTheNext: an instance of the previous
// release that starts during a deploy (a crash, a scale-up) migrates first,
// as every instance does, and finds the next release's migrations already
// applied: goose must see nothing to do rather than refuse versions it
// does not know.
func TestPreviousReleaseMigratesAfterTheNext(t *testing.T) {
	t.Parallel()
	db := openSQLite(t) // migrated by this release
	fsys, err := db.dialect.migrationFS()
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(fsys, "*.sql")
	if err != nil || len(names) < 2 {
		t.Fatalf("migrations %v, %v: want at least two", names, err)
	}
	previous := fstest.MapFS{}
	for _, name := range names[:len(names)-1] {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		previous[name] = &fstest.MapFile{Data: b}
	}
	provider, err := goose.NewProvider(db.dialect.goose, db.db.DB, previous, goose.WithDisableGlobalRegistry(true))
	if err != nil {
		t.Fatal(err)
	}
	results, err := provider.Up(context.Background())
	if err != nil || len(results) != 0 {
		t.Errorf("Up() with the migrations before %s = %v, %v; want nothing to do", names[len(names)-1], results, err)
	}
}
