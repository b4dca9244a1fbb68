//go:build linux

package storetest

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Cluster is a throwaway PostgreSQL server that a test starts, freezes,
// thaws and stops by itself, to see what the server does when its database
// stops answering. It never touches the server of TEST_DATABASE_URL, which
// other tests (and other processes) share.
//
// Its data lives in a temporary directory under os.TempDir() (not
// t.TempDir(), whose parents are private to the test's user) owned by the
// user that runs the server binaries: the test's own, or "postgres" when the
// test runs as root, which initdb and postgres refuse.
type Cluster struct {
	t     testing.TB
	bin   string // the directory of initdb, pg_ctl and postgres
	dir   string // the temporary directory: data/, log, the socket
	port  int
	owner *user.User // nil: the test's own user

	mu      sync.Mutex
	running bool
	frozen  []int // the processes Freeze stopped, to continue in Thaw
}

// StartCluster initialises and starts a PostgreSQL server on a free port of
// 127.0.0.1 with trust authentication, and stops it and removes its files
// when the test ends. Without the server binaries (pg_config --bindir, or
// /usr/lib/postgresql/*/bin) the test is skipped with one loud line, or
// fails when REQUIRE_POSTGRES=1.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	bin, err := postgresBinaries()
	if err != nil {
		if os.Getenv("REQUIRE_POSTGRES") == "1" {
			t.Fatalf("storetest: REQUIRE_POSTGRES=1 but the PostgreSQL server binaries are missing: %v", err)
		}
		clusterWarn.Do(func() {
			warn("storetest: PostgreSQL server binaries not found (%v); tests of a throwaway cluster SKIPPED (set REQUIRE_POSTGRES=1 to fail instead)\n", err)
		})
		t.Skipf("PostgreSQL server binaries not found: %v", err)
	}
	c := &Cluster{t: t, bin: bin}
	if os.Geteuid() == 0 {
		if c.owner, err = user.Lookup("postgres"); err != nil {
			t.Fatalf("storetest: running as root, the cluster needs the postgres user: %v", err)
		}
	}
	if c.dir, err = os.MkdirTemp("", "obsqra-cluster-"); err != nil {
		t.Fatalf("storetest: cluster directory: %v", err)
	}
	t.Cleanup(func() {
		c.Stop()
		if err := os.RemoveAll(c.dir); err != nil {
			t.Errorf("storetest: remove cluster directory: %v", err)
		}
	})
	if c.owner != nil {
		uid, _ := strconv.Atoi(c.owner.Uid)
		gid, _ := strconv.Atoi(c.owner.Gid)
		if err := os.Chown(c.dir, uid, gid); err != nil {
			t.Fatalf("storetest: chown cluster directory: %v", err)
		}
	}
	// Trust authentication on 127.0.0.1 only; no fsync at initdb, as the
	// cluster lives as long as the test.
	c.run("initdb", "-D", c.data(), "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
	c.port = freePort(t)
	c.Start()
	return c
}

// clusterWarn prints the missing binaries once per test process.
var clusterWarn sync.Once

// postgresBinaries returns the directory of the PostgreSQL server binaries.
func postgresBinaries() (string, error) {
	var dirs []string
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	found, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(found) - 1; i >= 0; i-- { // the newest version first
		dirs = append(dirs, found[i])
	}
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("no initdb in %v", dirs)
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("storetest: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

// run runs one of the server's binaries as the cluster's owner and fails
// the test with its output when it fails.
func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	path := filepath.Join(c.bin, name)
	cmd := exec.Command(path, args...)
	if c.owner != nil {
		cmd = exec.Command("runuser", append([]string{"-u", c.owner.Username, "--", path}, args...)...)
	}
	cmd.Dir = c.dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		c.t.Fatalf("storetest: %s %s: %v\n%s\n%s", name, strings.Join(args, " "), err, out.String(), log)
	}
}

// URL is the cluster's database postgres as the superuser postgres.
func (c *Cluster) URL() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", c.port)
}

// Start starts the cluster's server (again, after Stop) and waits until it
// accepts connections.
func (c *Cluster) Start() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.running {
		return
	}
	opts := fmt.Sprintf("-p %d -c listen_addresses=127.0.0.1 -k %s -c fsync=off -c max_connections=100", c.port, c.dir)
	c.run("pg_ctl", "start", "-w", "-t", "30", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts)
	c.running = true
}

// Stop stops the server at once (pg_ctl stop -m immediate), thawing it
// first if it is frozen. Connections then fail as refused.
func (c *Cluster) Stop() {
	c.t.Helper()
	c.Thaw()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.running {
		return
	}
	c.run("pg_ctl", "stop", "-w", "-t", "30", "-m", "immediate", "-D", c.data())
	c.running = false
}

// Freeze stops the postmaster and every process it forked with SIGSTOP, as
// a hung machine or a paused VM would: connections stay open and new ones
// are accepted by the kernel, but nothing answers. Thaw undoes it.
func (c *Cluster) Freeze() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.frozen != nil || !c.running {
		return
	}
	postmaster := c.postmaster()
	// The postmaster first, so that it forks no process that the scan
	// of its children below would miss.
	c.signal(postmaster, syscall.SIGSTOP)
	c.frozen = []int{postmaster}
	for _, pid := range children(postmaster) {
		c.signal(pid, syscall.SIGSTOP)
		c.frozen = append(c.frozen, pid)
	}
	// A signal is delivered asynchronously: wait until every process is
	// stopped, so that the test's next step meets a frozen server.
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range c.frozen {
		for s := procState(pid); s != "T" && s != "t" && s != "Z" && s != ""; s = procState(pid) {
			if time.Now().After(deadline) {
				c.t.Fatalf("storetest: process %d still in state %s after SIGSTOP", pid, s)
			}
			time.Sleep(time.Millisecond)
		}
	}
}

// FrozenPIDs returns the processes Freeze stopped, the postmaster first;
// none when the cluster is not frozen.
func (c *Cluster) FrozenPIDs() []int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]int(nil), c.frozen...)
}

// Thaw continues the processes Freeze stopped.
func (c *Cluster) Thaw() {
	c.t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, pid := range c.frozen {
		// A backend that a test's deadline closed may have exited meanwhile.
		_ = syscall.Kill(pid, syscall.SIGCONT)
	}
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range c.frozen {
		for s := procState(pid); (s == "T" || s == "t") && time.Now().Before(deadline); s = procState(pid) {
			time.Sleep(time.Millisecond)
		}
	}
	c.frozen = nil
}

func (c *Cluster) signal(pid int, sig syscall.Signal) {
	c.t.Helper()
	if err := syscall.Kill(pid, sig); err != nil {
		c.t.Fatalf("storetest: signal %v to %d: %v", sig, pid, err)
	}
}

// postmaster returns the pid of the cluster's postmaster, the first line of
// its postmaster.pid.
func (c *Cluster) postmaster() int {
	c.t.Helper()
	b, err := os.ReadFile(filepath.Join(c.data(), "postmaster.pid"))
	if err != nil {
		c.t.Fatalf("storetest: read postmaster.pid: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		c.t.Fatalf("storetest: postmaster.pid: %v", err)
	}
	return pid
}

// children returns the pids of the live processes whose parent is pid
// (zombies, exited backends the postmaster has not reaped, are left out).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if fields := procStat(child); len(fields) > 1 && fields[1] == strconv.Itoa(pid) && fields[0] != "Z" {
			out = append(out, child)
		}
	}
	return out
}

// procStat returns the fields of /proc/PID/stat after the command name
// (state, ppid, …), or nil when the process is gone.
func procStat(pid int) []string {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return nil
	}
	// pid (comm) state ppid …; comm may hold spaces and parentheses.
	s := string(stat)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(s[i+1:])
}

// procState returns the state letter of process pid (R, S, T, Z …), or ""
// when it is gone.
func procState(pid int) string {
	if fields := procStat(pid); len(fields) > 0 {
		return fields[0]
	}
	return ""
}
