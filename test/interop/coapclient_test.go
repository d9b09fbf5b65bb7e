// Package interop checks Medfleet against other implementations of its
// protocols. coapclient_test.go replays the worked examples of
// docs/protocol.md with libcoap's coap-client against a real medfleetd, so
// that the normative text and the server cannot drift apart.
package interop

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medfleet/medfleet/internal/servertest"
	"github.com/medfleet/medfleet/inventory"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

const (
	// protocolDoc is the document whose examples are replayed.
	protocolDoc = "../../docs/protocol.md"
	// coapClient is libcoap's client without DTLS (Debian package libcoap3-bin).
	coapClient = "coap-client-notls"
	// docServer is the server address the examples are written for; the
	// test substitutes the address of its own server.
	docServer = "coap://127.0.0.1:5683"
	// commandTimeout bounds one coap-client run; a lost answer would
	// otherwise keep it waiting 90 s.
	commandTimeout = 10 * time.Second
)

// step is one `$ command` line of a console block, with the output the
// document shows for it.
type step struct {
	line    int // in protocolDoc, for messages
	command string
	want    []string
}

// Commands other than coap-client that the examples use. The test performs
// them itself, so that it needs neither a shell nor xxd, and so that a
// document edit cannot make it run anything else.
var (
	// echo HEX | xxd -r -p > FILE: write the bytes to FILE.
	hexToFile = regexp.MustCompile(`^echo ([0-9a-fA-F]+) \| xxd -r -p > ([A-Za-z0-9._-]+)$`)
	// xxd -p FILE: print FILE in hex, 30 bytes a line.
	fileToHex = regexp.MustCompile(`^xxd -p ([A-Za-z0-9._-]+)$`)
)

func TestCoAPClientExamples(t *testing.T) {
	if _, err := exec.LookPath(coapClient); err != nil {
		t.Skipf("%s is not on PATH: install libcoap3-bin (apt-get install -y libcoap3-bin) to replay the examples of docs/protocol.md", coapClient)
	}
	steps, err := parseExamples(protocolDoc)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) < 10 {
		t.Fatalf("%s has %d replayable steps, want the worked examples of section 13 (at least 10)", protocolDoc, len(steps))
	}

	cfg := servertest.Config(t)
	// No checkpoint during the replay: the desired states' stored stays 0,
	// as the examples show.
	cfg.Inventory.CheckpointInterval = time.Minute
	srv := servertest.Start(t, cfg)
	addr := srv.Addrs().CoAP.(*net.UDPAddr)
	target := fmt.Sprintf("coap://127.0.0.1:%d", addr.Port)
	dir := t.TempDir()

	for _, s := range steps {
		got, err := run(dir, s.command, target)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", protocolDoc, s.line, s.command, err)
		}
		if !equalLines(got, s.want) {
			t.Errorf("%s:%d: %s\ngot:\n%s\nwant:\n%s", protocolDoc, s.line, s.command, quoteLines(got), quoteLines(s.want))
		}
	}

	t.Logf("replayed %d commands of %s with %s", len(steps), protocolDoc, coapClient)

	checkState(t, srv.Inventory())
	st := srv.GatewayStats()
	if st.Duplicates != 1 || st.BadRequests != 2 || st.NotRegistered != 2 {
		t.Errorf("GatewayStats() = %+v, want 1 duplicate, 2 bad requests, 2 not registered", st)
	}
}

// checkState verifies, through the Go API, what section 13.13 of the
// document says the examples leave behind.
func checkState(t *testing.T, inv *inventory.Inventory) {
	t.Helper()
	pump, err := inv.Get("pump-4471")
	if err != nil {
		t.Fatalf("Get(pump-4471): %v", err)
	}
	ps := pump.GetStatus()
	checks := []struct {
		name      string
		got, want any
	}{
		{"pump profile", pump.GetProfile(), "infusion-pump"},
		{"pump model", pump.GetModel(), "Alaris 8100"},
		{"pump serial", pump.GetSerial(), "8100-4471"},
		{"pump udi", pump.GetUdi(), "(01)09506000134352(21)8100-4471"},
		{"pump usage_seconds", ps.GetUsageSeconds(), 6300.0},
		{"pump usage_counter", ps.GetUsageCounter(), 900.0},
		{"pump usage_resets", ps.GetUsageResets(), uint32(1)},
		{"pump last_seq", ps.GetLastSeq(), uint64(4)},
		{"pump reports_accepted", ps.GetReportsAccepted(), uint64(4)},
		{"pump reports_duplicate", ps.GetReportsDuplicate(), uint64(1)},
		{"pump firmware_version", ps.GetFirmwareVersion(), "12.1.1"},
		{"pump clinical_state", ps.GetClinicalState(), pb.ClinicalState_CLINICAL_STATE_IDLE},
		{"pump battery_percent", ps.GetBatteryPercent(), 81.0},
		{"pump alarm_counts[occlusion]", ps.GetAlarmCounts()["occlusion"], 2.0},
		{"pump telemetry[board/temp]", ps.GetTelemetry()["board/temp"], 36.5},
		{"pump lifetime_seconds", ps.GetLifetimeSeconds(), uint32(120)},
		{"pump connectivity", ps.GetConnectivity(), pb.Connectivity_CONNECTIVITY_ONLINE},
	}

	reader, err := inv.Get("rfid-4w-07")
	if err != nil {
		t.Fatalf("Get(rfid-4w-07): %v", err)
	}
	rs := reader.GetStatus()
	checks = append(checks, []struct {
		name      string
		got, want any
	}{
		{"reader profile", reader.GetProfile(), "rfid-reader"},
		{"reader model", reader.GetModel(), "Impinj R700"},
		{"reader serial", reader.GetSerial(), "37017090614"},
		{"reader firmware_version", rs.GetFirmwareVersion(), "8.1.1"},
		{"reader last_seq", rs.GetLastSeq(), uint64(1)},
		{"reader wifi_rssi_dbm", rs.GetWifiRssiDbm(), -58.0},
		{"reader lifetime_seconds", rs.GetLifetimeSeconds(), uint32(300)},
		{"reader connectivity", rs.GetConnectivity(), pb.Connectivity_CONNECTIVITY_ONLINE},
	}...)
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}

	if d, err := inv.Get("pump-9999"); !errors.Is(err, inventory.ErrNotFound) {
		t.Errorf("Get(pump-9999) = %v, %v; want ErrNotFound: a report from an unregistered device creates nothing", d, err)
	}
}

// parseExamples returns the steps of every ```console block of the
// document, in order. In such a block a line that starts with "$ " is a
// command; the lines up to the next command are its output.
func parseExamples(path string) ([]step, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var (
		steps   []step
		inBlock bool
		fence   string // the opening fence, to find the closing one
		cur     *step
	)
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if !inBlock {
			if strings.HasPrefix(trimmed, "```") {
				info := strings.TrimLeft(trimmed, "`")
				fence = trimmed[:len(trimmed)-len(info)]
				inBlock = strings.TrimSpace(info) == "console"
				if !inBlock {
					// Skip any other fenced block up to its closing fence.
					for sc.Scan() {
						n++
						if strings.HasPrefix(strings.TrimSpace(sc.Text()), fence) {
							break
						}
					}
				}
			}
			continue
		}
		if strings.HasPrefix(trimmed, fence) && strings.Trim(trimmed, "`") == "" {
			inBlock, cur = false, nil
			continue
		}
		if cmd, ok := strings.CutPrefix(line, "$ "); ok {
			steps = append(steps, step{line: n, command: strings.TrimSpace(cmd)})
			cur = &steps[len(steps)-1]
			continue
		}
		if cur == nil {
			return nil, fmt.Errorf("%s:%d: output before the first `$ ` command of a console block", path, n)
		}
		cur.want = append(cur.want, line)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if inBlock {
		return nil, fmt.Errorf("%s: console block not closed", path)
	}
	return steps, nil
}

// run performs one command in dir and returns what it printed, standard
// output and standard error interleaved as a terminal shows them.
func run(dir, command, target string) (string, error) {
	if m := hexToFile.FindStringSubmatch(command); m != nil {
		b, err := hex.DecodeString(m[1])
		if err != nil {
			return "", err
		}
		return "", os.WriteFile(filepath.Join(dir, m[2]), b, 0o644)
	}
	if m := fileToHex.FindStringSubmatch(command); m != nil {
		b, err := os.ReadFile(filepath.Join(dir, m[1]))
		if err != nil {
			return "", err
		}
		return xxdPlain(b), nil
	}
	args, err := splitWords(command)
	if err != nil {
		return "", err
	}
	if args[0] != coapClient {
		return "", fmt.Errorf("cannot replay: only %s, `echo HEX | xxd -r -p > FILE` and `xxd -p FILE` are replayable", coapClient)
	}
	found := false
	for i, a := range args {
		if strings.Contains(a, docServer) {
			args[i] = strings.ReplaceAll(a, docServer, target)
			found = true
		}
	}
	if !found {
		return "", fmt.Errorf("the command does not address %s", docServer)
	}
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out // one pipe: the order of the two streams is kept
	cmd.WaitDelay = time.Second
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%w; output: %q", err, out.String())
	}
	return out.String(), nil
}

// xxdPlain formats b as `xxd -p` does: lower-case hex, 30 bytes a line.
func xxdPlain(b []byte) string {
	var sb strings.Builder
	for len(b) > 0 {
		n := min(len(b), 30)
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return sb.String()
}

// splitWords splits a command line into words as a POSIX shell would for
// the subset the document uses: blanks, '...' and "..." quoting, and
// backslash escapes. Shell operators are refused, since nothing here
// interprets them.
func splitWords(s string) ([]string, error) {
	var (
		words []string
		word  strings.Builder
		have  bool // a word is open (possibly empty: '')
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t':
			if have {
				words, have = append(words, word.String()), false
				word.Reset()
			}
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			word.WriteString(s[i+1 : i+1+end])
			i += end + 1
			have = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '$' || s[i] == '`' {
					return nil, fmt.Errorf("cannot replay %q inside double quotes", s[i])
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				word.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, errors.New("unterminated double quote")
			}
			have = true
		case c == '\\':
			if i+1 == len(s) {
				return nil, errors.New("backslash at the end of the command")
			}
			i++
			word.WriteByte(s[i])
			have = true
		case strings.IndexByte("|&;<>()$`*?[]{}~#", c) >= 0:
			return nil, fmt.Errorf("cannot replay the shell operator %q: quote it", c)
		default:
			word.WriteByte(c)
			have = true
		}
	}
	if have {
		words = append(words, word.String())
	}
	if len(words) == 0 {
		return nil, errors.New("empty command")
	}
	return words, nil
}

// equalLines compares output with the expected lines, ignoring trailing
// white space on each line and trailing empty lines.
func equalLines(got string, want []string) bool {
	g := normalise(strings.Split(got, "\n"))
	w := normalise(want)
	if len(g) != len(w) {
		return false
	}
	for i := range g {
		if g[i] != w[i] {
			return false
		}
	}
	return true
}

func normalise(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = strings.TrimRight(l, " \t\r")
	}
	for len(out) > 0 && out[len(out)-1] == "" {
		out = out[:len(out)-1]
	}
	return out
}

func quoteLines(v any) string {
	var lines []string
	switch v := v.(type) {
	case string:
		lines = normalise(strings.Split(v, "\n"))
	case []string:
		lines = normalise(v)
	}
	if len(lines) == 0 {
		return "\t(nothing)"
	}
	var sb strings.Builder
	for i, l := range lines {
		if i > 0 {
			sb.WriteByte('\n')
		}
		sb.WriteString("\t" + strconv.Quote(l))
	}
	return sb.String()
}
