package rollout

import (
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	pb "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Defaults of a rollout's settings (docs/operations.md, "Firmware").
const (
	DefaultCanary        = 3
	DefaultDeviceTimeout = 24 * time.Hour
	DefaultMaxRetries    = 2
	// DefaultSoak is one clinical shift: a new image runs that long on a
	// wave before the next one starts.
	DefaultSoak    = 8 * time.Hour
	maxRetries     = 10
	maxWaves       = 20
	maxWindows     = 20
	maxDescription = 1024
)

// FieldError names the request field that is wrong.
type FieldError struct {
	Field, Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

func fieldErr(field, format string, args ...any) error {
	return &FieldError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

var idPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,62}$`)

// defaultWaves are a canary, a quarter, then everyone.
func defaultWaves() []*pb.Wave {
	soak := durationpb.New(DefaultSoak)
	return []*pb.Wave{
		{Devices: DefaultCanary, Soak: soak},
		{CumulativePercent: 25, Soak: soak},
		{CumulativePercent: 100},
	}
}

// normalize checks a rollout's settings as CreateRollout receives them and
// fills in the defaults. Errors name the field under "rollout.".
func normalize(r *pb.Rollout) error {
	if len(r.GetDescription()) > maxDescription {
		return fieldErr("rollout.description", "longer than %d bytes", maxDescription)
	}
	if len(r.Waves) == 0 {
		r.Waves = defaultWaves()
	}
	if len(r.Waves) > maxWaves {
		return fieldErr("rollout.waves", "%d waves; at most %d", len(r.Waves), maxWaves)
	}
	prev := 0.0
	for i, w := range r.Waves {
		f := fmt.Sprintf("rollout.waves[%d]", i)
		canary := w.GetDevices() > 0
		switch {
		case w.GetDevices() < 0:
			return fieldErr(f+".devices", "negative")
		case canary && w.GetCumulativePercent() != 0:
			return fieldErr(f, "give devices or cumulative_percent, not both")
		case !canary && (w.GetCumulativePercent() <= prev || w.GetCumulativePercent() > 100):
			return fieldErr(f+".cumulative_percent", "%v must be above the previous wave's (%v) and at most 100", w.GetCumulativePercent(), prev)
		}
		if !canary {
			prev = w.GetCumulativePercent()
		}
		for name, v := range map[string]float64{"success_percent": w.GetSuccessPercent(), "error_percent": w.GetErrorPercent()} {
			if v < 0 || v > 100 || math.IsNaN(v) {
				return fieldErr(f+"."+name, "%v is outside 0..100", v)
			}
		}
		if w.GetMinFinished() < 0 {
			return fieldErr(f+".min_finished", "negative")
		}
		if err := checkDuration(w.GetSoak(), 0, 30*24*time.Hour); err != nil {
			return fieldErr(f+".soak", "%v", err)
		}
		if w.GetSuccessPercent() == 0 {
			w.SuccessPercent = 95
			if canary {
				w.SuccessPercent = 100
			}
		}
		if w.GetMinFinished() == 0 && w.GetErrorPercent() == 0 {
			// Unset thresholds: a canary pauses on its first failure, a
			// wave on more than 2 % once 20 finished.
			w.MinFinished = 1
			if !canary {
				w.ErrorPercent, w.MinFinished = 2, 20
			}
		}
		w.State, w.Counts, w.StartTime, w.SuccessTime, w.AcknowledgedFailures = pb.WaveState_WAVE_STATE_PENDING, nil, nil, nil, 0
	}
	if last := r.Waves[len(r.Waves)-1]; last.GetDevices() > 0 || last.GetCumulativePercent() != 100 {
		return fieldErr("rollout.waves", "the last wave must reach cumulative_percent 100, so that every device is taken")
	}
	if rate := r.GetRate(); rate != nil {
		switch {
		case rate.GetPerMinute() < 0 || math.IsNaN(rate.GetPerMinute()):
			return fieldErr("rollout.rate.per_minute", "negative")
		case rate.GetIncrementFactor() != 0 && (rate.GetIncrementFactor() < 1.1 || rate.GetIncrementFactor() > 5):
			return fieldErr("rollout.rate.increment_factor", "%v is outside 1.1..5", rate.GetIncrementFactor())
		case rate.GetIncrementFactor() != 0 && rate.GetIncreaseEvery() < 1:
			return fieldErr("rollout.rate.increase_every", "required (at least 1) with increment_factor")
		case rate.GetIncrementFactor() != 0 && rate.GetPerMinute() == 0:
			return fieldErr("rollout.rate.per_minute", "required with increment_factor")
		case rate.GetMaxPerMinute() < 0:
			return fieldErr("rollout.rate.max_per_minute", "negative")
		}
	}
	if r.DeviceTimeout == nil {
		r.DeviceTimeout = durationpb.New(DefaultDeviceTimeout)
	}
	if err := checkDuration(r.GetDeviceTimeout(), time.Second, 30*24*time.Hour); err != nil {
		return fieldErr("rollout.device_timeout", "%v", err)
	}
	if r.MaxRetries == nil {
		r.MaxRetries = proto.Int32(DefaultMaxRetries)
	}
	if n := r.GetMaxRetries(); n < 0 || n > maxRetries {
		return fieldErr("rollout.max_retries", "%d is outside 0..%d", n, maxRetries)
	}
	if len(r.GetWindows()) > maxWindows {
		return fieldErr("rollout.windows", "%d windows; at most %d", len(r.GetWindows()), maxWindows)
	}
	for i, w := range r.GetWindows() {
		if _, err := compileWindow(w); err != nil {
			err.Field = fmt.Sprintf("rollout.windows[%d].%s", i, err.Field)
			return err
		}
	}
	return nil
}

func checkDuration(d *durationpb.Duration, lo, hi time.Duration) error {
	if d == nil {
		return nil
	}
	if err := d.CheckValid(); err != nil {
		return err
	}
	if v := d.AsDuration(); v < lo || v > hi {
		return fmt.Errorf("%v is outside %v..%v", v, lo, hi)
	}
	return nil
}

// window is a MaintenanceWindow ready to be asked whether it is open.
type window struct {
	sites     []string
	loc       *time.Location
	days      [7]bool // by time.Weekday
	hour, min int     // local opening time
	duration  time.Duration
}

var dayNames = map[string]time.Weekday{
	"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday,
	"thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday,
}

func compileWindow(w *pb.MaintenanceWindow) (*window, *FieldError) {
	c := &window{sites: w.GetSites(), loc: time.UTC}
	if tz := w.GetTimeZone(); tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil {
			return nil, &FieldError{"time_zone", fmt.Sprintf("%q is not an IANA time zone", tz)}
		}
		c.loc = loc
	}
	if len(w.GetDays()) == 0 {
		c.days = [7]bool{true, true, true, true, true, true, true}
	}
	for _, d := range w.GetDays() {
		wd, ok := dayNames[strings.ToLower(d)]
		if !ok {
			return nil, &FieldError{"days", fmt.Sprintf("%q is not a day; use mon, tue, wed, thu, fri, sat, sun", d)}
		}
		c.days[wd] = true
	}
	t, err := time.Parse("15:04", w.GetStart())
	if err != nil {
		return nil, &FieldError{"start", fmt.Sprintf("%q is not a local time HH:MM", w.GetStart())}
	}
	c.hour, c.min = t.Hour(), t.Minute()
	if err := checkDuration(w.GetDuration(), time.Minute, 24*time.Hour); err != nil || w.GetDuration() == nil {
		return nil, &FieldError{"duration", "required, between 1m and 24h"}
	}
	c.duration = w.GetDuration().AsDuration()
	return c, nil
}

// open reports whether the window is open at now for a device at site.
func (w *window) open(site string, now time.Time) bool {
	if len(w.sites) > 0 && !slices.Contains(w.sites, site) {
		return false
	}
	local := now.In(w.loc)
	// A window of up to 24 h that is open now opened today or yesterday.
	for _, back := range []int{0, -1} {
		opens := time.Date(local.Year(), local.Month(), local.Day()+back, w.hour, w.min, 0, 0, w.loc)
		if w.days[opens.Weekday()] && !local.Before(opens) && local.Before(opens.Add(w.duration)) {
			return true
		}
	}
	return false
}

// windows are a rollout's windows: with none, installs may happen any
// time.
type windows []*window

func compileWindows(ws []*pb.MaintenanceWindow) windows {
	out := make(windows, 0, len(ws))
	for _, w := range ws {
		if c, err := compileWindow(w); err == nil { // checked at creation
			out = append(out, c)
		}
	}
	return out
}

func (ws windows) open(site string, now time.Time) bool {
	if len(ws) == 0 {
		return true
	}
	for _, w := range ws {
		if w.open(site, now) {
			return true
		}
	}
	return false
}
