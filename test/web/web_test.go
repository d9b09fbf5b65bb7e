// Package web tests the locate page in a real browser: a secure medfleetd
// runs in the test process on loopback, Debian's chromium (headless) loads
// the page from it, and the test does what a nurse would: sign in with a
// token, find a pump, mark it clean, find the nearest available pumps and
// look at the floor plan.
package web

import (
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"google.golang.org/grpc"

	"github.com/medfleet/medfleet/internal/servertest"
	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// screenshotPath is where the test leaves a picture of the page, for review.
const screenshotPath = "testdata/locate-page.png"

// The devices of the test: a soiled pump in a patient room of 4 West and a
// clean one in its clean utility room (examples/facility/hospital.yaml).
const (
	soiledPump, soiledZone, soiledRoom = "pump-4471", "4w-402-bed", "Room 402"
	cleanPump, cleanZone               = "pump-4472", "4w-clean"
)

// chromium returns the browser to run, or skips the test.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	t.Skip("no chromium binary: install it (scripts/install-test-deps.sh) to test the locate page in a browser")
	return ""
}

func TestLocatePage(t *testing.T) {
	browser := chromium(t)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()

	cfg := servertest.SecureConfig(t)
	srv := servertest.Start(t, cfg)
	cc := servertest.Dial(t, cfg, srv)
	token := setUp(ctx, t, cc)
	base := "http://" + srv.Addrs().HTTP.String() + "/"

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-proxy-server", true), // loopback only
		chromedp.WindowSize(1024, 768),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()

	// Uncaught exceptions and Content-Security-Policy violations fail the
	// test: the page must work under its own policy.
	if err := chromedp.Do(bctx); err != nil { // start the browser and open the tab
		t.Fatalf("starting %s: %v", browser, err)
	}
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(bctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()

	p := &page{t: t, ctx: bctx}

	// Sign in.
	p.do("open the page", chromedp.Navigate(base))
	p.waitFor("the sign-in form", `!document.querySelector('#login').hidden`)
	p.do("sign in",
		chromedp.SendKeys(chromedp.ID("token"), token),
		chromedp.Click(chromedp.CSS(`#login-form button[type=submit]`)))
	p.waitFor("the app after signing in", `!document.querySelector('#app').hidden`)
	if who := p.text("#who-text"); !strings.Contains(who, "nurse") || !strings.Contains(who, "facility") {
		t.Errorf("signed in as %q, want the nurse, facility", who)
	}

	// Search the soiled pump and mark it clean.
	card := fmt.Sprintf(`#search-results li[data-device=%q]`, soiledPump)
	p.do("search", chromedp.SendKeys(chromedp.ID("q"), soiledPump), chromedp.Click(chromedp.CSS(`#search-form button[type=submit]`)))
	p.waitFor("the pump in the results", fmt.Sprintf(`!!document.querySelector(%q)`, card))
	if got := p.text(card); !strings.Contains(got, soiledRoom) || !strings.Contains(got, "soiled") || !strings.Contains(got, "Seen") {
		t.Errorf("search result = %q, want %s, soiled, and when it was seen", got, soiledRoom)
	}
	p.do("mark clean", chromedp.Click(chromedp.CSS(card+` button[data-set="AVAILABILITY_AVAILABLE"]`)))
	p.waitFor("the pump marked available, or an error", fmt.Sprintf(`document.querySelector(%q)?.textContent === 'available' || !!document.querySelector(%q)`, card+" .badge", card+" .error"))
	if e := p.text(card + " .error"); e != "" {
		t.Fatalf("mark clean: the page says %q", e) // "the audit log is not connected": server.go must give webAPI its audit log
	}
	if got := p.text("#notice"); !strings.Contains(got, "is now available") {
		t.Errorf("notice = %q, want it to say the pump is now available", got)
	}
	loc, err := pb.NewLocationServiceClient(cc).Locate(ctx, &pb.LocateRequest{Device: soiledPump})
	if err != nil || loc.GetAvailability() != pb.Availability_AVAILABILITY_AVAILABLE {
		t.Errorf("after mark clean, Locate(%s) = %v, %v; want available", soiledPump, loc.GetAvailability(), err)
	}
	audit, err := pb.NewAuditServiceClient(cc).ListAuditRecords(ctx, &pb.ListAuditRecordsRequest{
		Filter: `actor = "users/nurse" AND action = "` + pb.LocationService_SetAvailability_FullMethodName + `"`})
	if err != nil || len(audit.GetRecords()) != 1 || audit.GetRecords()[0].GetOutcome() != "OK" ||
		audit.GetRecords()[0].GetTarget() != "devices/"+soiledPump || !strings.HasPrefix(audit.GetRecords()[0].GetSource(), "127.0.0.1:") {
		t.Errorf("audit of the nurse's SetAvailability = %v, %v; want one OK record for devices/%s from 127.0.0.1", audit.GetRecords(), err, soiledPump)
	}

	// Nearest available infusion pumps to 4 West, as FindNearest ranks them.
	p.do("open nearest", chromedp.Click(chromedp.CSS(`.tabs button[data-view="nearest"]`)))
	p.waitFor("the unit picker", `!!document.querySelector('#near option[value="4-west"]')`)
	p.do("find nearest",
		chromedp.SetValue(chromedp.ID("near"), "4-west"),
		chromedp.SetValue(chromedp.ID("profile"), "infusion-pump"),
		chromedp.Click(chromedp.CSS(`#nearest-form button[type=submit]`)))
	p.waitFor("two pumps ranked", `document.querySelectorAll('#nearest-results li').length === 2`)
	ranked := p.eval(`[...document.querySelectorAll('#nearest-results li')].map(li => li.dataset.device + ' ' + li.querySelector('.distance').textContent)`)
	near, err := pb.NewLocationServiceClient(cc).FindNearest(ctx, &pb.FindNearestRequest{Near: "4-west", Profile: "infusion-pump"})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range near.GetDevices() {
		want = append(want, fmt.Sprintf("%s %d m away · ", strings.TrimPrefix(d.GetLocation().GetDevice(), "devices/"), int(math.Round(d.GetDistanceM()))))
	}
	if !slices.Equal(ranked, want) || len(want) != 2 {
		t.Errorf("nearest available to 4 West = %q, want both pumps as FindNearest ranks them: %q", ranked, want)
	}

	// The floor plan: 4 West's rooms with the pumps in them.
	p.do("open the floor plan", chromedp.Click(chromedp.CSS(`.tabs button[data-view="floor"]`)))
	const drawn = `document.querySelector('#floor-plan').getAttribute('aria-busy') === 'false'`
	p.waitFor("the floor picker", `!!document.querySelector('#floor option[value="main-4"]') && `+drawn)
	p.do("choose floor 4", chromedp.SetValue(chromedp.ID("floor"), "main-4")) // and its change event
	zone := func(id string) string { return fmt.Sprintf(`#floor-plan g.zone.has[data-zone=%q]`, id) }
	p.waitFor("the pumps' zones", fmt.Sprintf(`%s && !!document.querySelector(%q) && !!document.querySelector(%q)`, drawn, zone(soiledZone), zone(cleanZone)))
	p.do("open a zone by mouse", chromedp.Click(chromedp.CSS(zone(cleanZone)+" circle")))
	p.waitFor("the clean pump listed", fmt.Sprintf(`!!document.querySelector('#zone-devices li[data-device=%q]')`, cleanPump))
	p.do("open a zone by keyboard", chromedp.Focus(chromedp.CSS(zone(soiledZone))), chromedp.KeyEvent(kb.Enter))
	p.waitFor("the marked pump listed", fmt.Sprintf(`!!document.querySelector('#zone-devices li[data-device=%q]')`, soiledPump))
	if got := p.text("#zone-devices"); !strings.Contains(got, soiledRoom) || !strings.Contains(got, "available") {
		t.Errorf("zone %s lists %q, want %s and the pump available", soiledZone, got, soiledRoom)
	}

	shot, err := chromedp.Run(bctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	if err := os.MkdirAll(filepath.Dir(screenshotPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(screenshotPath, shot, 0o644); err != nil {
		t.Fatal(err)
	}

	// Keyboard only: from the top of the page, Tab reaches the search
	// field, which has a label and a visible focus.
	p.do("back to search", chromedp.Click(chromedp.CSS(`.tabs button[data-view="search"]`)))
	p.eval(`document.activeElement.blur(), window.scrollTo(0, 0), []`)
	reached := false
	for range 12 {
		p.do("press Tab", chromedp.KeyEvent(kb.Tab))
		if p.eval(`[document.activeElement.id]`)[0] == "q" {
			reached = true
			break
		}
	}
	if !reached {
		t.Fatalf("12 presses of Tab did not reach the search field; focus is on %q", p.eval(`[document.activeElement.outerHTML.slice(0, 80)]`))
	}
	label := p.eval(`[...document.activeElement.labels].map(l => l.textContent.trim())`)
	if len(label) != 1 || label[0] == "" {
		t.Errorf("the search field's labels = %q, want one with text", label)
	}
	if outline := p.eval(`[getComputedStyle(document.activeElement).outlineStyle]`); outline[0] == "none" {
		t.Errorf("the search field focused by keyboard has outline-style %q, want a visible focus", outline[0])
	}

	mu.Lock()
	defer mu.Unlock()
	for _, m := range problems {
		t.Errorf("browser console: %s", m)
	}
}

// setUp applies the sample facility and makes a facility user, whose
// token it returns, and the two pumps.
func setUp(ctx context.Context, t *testing.T, cc grpc.ClientConnInterface) string {
	t.Helper()
	yaml, err := os.ReadFile("../../examples/facility/hospital.yaml")
	if err != nil {
		t.Fatal(err)
	}
	locs := pb.NewLocationServiceClient(cc)
	if _, err := locs.ApplyFacility(ctx, &pb.ApplyFacilityRequest{Yaml: string(yaml)}); err != nil {
		t.Fatalf("ApplyFacility: %v", err)
	}
	users := pb.NewAccessServiceClient(cc)
	if _, err := users.CreateUser(ctx, &pb.CreateUserRequest{UserId: "nurse", User: &pb.User{Role: pb.Role_ROLE_FACILITY}}); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	tok, err := users.CreateToken(ctx, &pb.CreateTokenRequest{Parent: "users/nurse"})
	if err != nil {
		t.Fatalf("CreateToken: %v", err)
	}
	devices := pb.NewDeviceServiceClient(cc)
	for _, d := range []struct {
		id, tag, zone string
		availability  pb.Availability
	}{
		{soiledPump, "E28011606000020800004471", soiledZone, pb.Availability_AVAILABILITY_SOILED},
		{cleanPump, "E28011606000020800004472", cleanZone, pb.Availability_AVAILABILITY_AVAILABLE},
	} {
		if _, err := devices.CreateDevice(ctx, &pb.CreateDeviceRequest{DeviceId: d.id, Device: &pb.Device{
			Profile: "infusion-pump", Model: "Alaris 8015", Site: "north", RfidTag: d.tag}}); err != nil {
			t.Fatalf("CreateDevice(%s): %v", d.id, err)
		}
		if _, err := locs.CheckIn(ctx, &pb.CheckInRequest{Device: d.id, Zone: d.zone}); err != nil {
			t.Fatalf("CheckIn(%s, %s): %v", d.id, d.zone, err)
		}
		if _, err := locs.SetAvailability(ctx, &pb.SetAvailabilityRequest{Device: d.id, Availability: d.availability, Reason: "test"}); err != nil {
			t.Fatalf("SetAvailability(%s): %v", d.id, err)
		}
	}
	return tok.GetSecret()
}

// page drives the browser's tab; every step fails the test on error.
type page struct {
	t   *testing.T
	ctx context.Context
}

func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression whose value is a list of strings.
func (p *page) eval(expr string) []string {
	p.t.Helper()
	v, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]string](expr))
	if err != nil {
		p.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

func (p *page) text(sel string) string {
	p.t.Helper()
	return p.eval(fmt.Sprintf(`[document.querySelector(%q)?.textContent ?? '']`, sel))[0]
}

// waitFor waits until a JavaScript expression is true, for at most 10 s.
// (chromedp.Poll compiles its predicate with new Function, which the page's
// Content-Security-Policy rightly forbids.)
func (p *page) waitFor(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ok, err := chromedp.Run(p.ctx, chromedp.Evaluate[bool]("!!("+expr+")"))
		if err == nil && ok {
			return
		}
		if err != nil || time.Now().After(deadline) {
			body := p.text("body")
			p.t.Fatalf("waiting for %s (%s): %v; the page says: %.600s", what, expr, err, strings.Join(strings.Fields(body), " "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}
