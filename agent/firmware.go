package agent

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/plgd-dev/go-coap/v3/message/codes"
	"github.com/plgd-dev/go-coap/v3/net/blockwise"

	"github.com/medfleet/medfleet/coap"
	"github.com/medfleet/medfleet/firmware/manifest"
)

// FirmwareFile is the name of the firmware update state in Config.StateDir.
const FirmwareFile = "firmware.json"

// How the agent downloads. A loop pass fetches at most blocksPerPass blocks
// or for passBudget, then lets the loop report and heartbeat; it comes
// back at once while there is more to fetch.
const (
	blocksPerPass = 16
	passBudget    = 100 * time.Millisecond
	// maxBlockFailures is how many block requests in a row may fail (no
	// answer, 5.xx without Max-Age, an unusable block) before the download
	// ends with result 4, connection lost. Between failures the agent backs
	// off (Config.RetryMin to RetryMax).
	maxBlockFailures = 10
	// blockTimeout bounds the wait for the answer to one NON block request
	// (ACK_TIMEOUT x ACK_RANDOM_FACTOR, protocol section 7.1); a shorter
	// Config.RequestTimeout wins.
	blockTimeout = 3 * time.Second
	// maxImageRestarts is how many times one download may start again at
	// block 0 (the server said 4.02, a block past the end, before the
	// image was complete) before it ends with result 5.
	maxImageRestarts = 3
	// DefaultFirmwareRetry is how long after a download lost its connection
	// (result 4) the agent tries the same image again, jittered by ± 20 %.
	// Other failures are final for that image: the agent tries it again
	// only after it has been given another image.
	DefaultFirmwareRetry = 10 * time.Minute
	// maxMemoryImage bounds an image kept in memory (no state directory):
	// a bigger one ends with result 3, out of memory.
	maxMemoryImage = 64 << 20
)

// FirmwareStatus is what a device's agent knows of its firmware: the ground
// truth for end-to-end tests.
type FirmwareStatus struct {
	// Running is the version the device runs.
	Running string
	// State and Result are the LwM2M object 5 values the device reports
	// (coap.FWIdle... and coap.FWResult...).
	State, Result int
	// TargetVersion and TargetSHA256 are those of the image being
	// downloaded, waiting or installed; empty when Idle.
	TargetVersion, TargetSHA256 string
	// Downloaded is how many bytes of the target the device has.
	Downloaded uint64
	// Installs counts the updates the device started (it entered
	// Updating) over its life, successful or not.
	Installs int
}

// firmwareState is what the agent keeps in {StateDir}/firmware.json, so
// that a restarted agent resumes a download from its last saved block,
// finishes an update it was in, and reports the version it runs.
type firmwareState struct {
	// Running is the version the device runs; Previous the one it ran
	// before its last successful update.
	Running  string `json:"running"`
	Previous string `json:"previous,omitempty"`
	// Configured is Config.Firmware when the file was written: when the
	// configuration names another version, the device was flashed by other
	// means and the file is out of date.
	Configured string `json:"configured"`
	State      int    `json:"state"`
	Result     int    `json:"result"`
	// Target is the image being handled (Downloading, Downloaded,
	// Updating).
	Target *coap.FirmwareTarget `json:"target,omitempty"`
	// Offset is the number of bytes of the target staged and synced, a
	// whole number of BlockSize blocks until the last block.
	Offset    uint64 `json:"offset"`
	BlockSize uint64 `json:"block_size,omitempty"`
	// Installed is set in Updating once the Installer's Install returned:
	// a restarted agent goes on with the self-test.
	Installed bool `json:"installed,omitempty"`
	// Installs counts the updates the device started (entered Updating)
	// over its life.
	Installs int `json:"installs,omitempty"`
	// BusySince is when the device, allowed to install, was first found
	// busy; Deferred that it reported result 11 for the target.
	BusySince time.Time `json:"busy_since,omitzero"`
	Deferred  bool      `json:"deferred,omitempty"`
	// Failed is the last image that failed, and how.
	Failed  *firmwareFailure `json:"failed,omitempty"`
	SavedAt time.Time        `json:"saved_at"`
}

// firmwareFailure is an image the agent will not try again, or not before
// RetryAt.
type firmwareFailure struct {
	SHA256 string `json:"sha256"`
	Result int    `json:"result"`
	// RetryAt, when set, is when the image may be tried again.
	RetryAt time.Time `json:"retry_at,omitzero"`
}

// firmware is the agent's update machine. Like the rest of the agent it
// belongs to the loop goroutine, except status, which others read.
type firmware struct {
	st firmwareState
	// want is the desired state's latest `fw`; seen says a desired state
	// arrived since the agent started (before, a restarted agent does not
	// know whether its target is still wanted).
	want      *coap.FirmwareTarget
	seen      bool
	keys      manifest.Keys
	installer Installer
	stage     stage
	// Download pacing.
	failures   int // consecutive failed block requests
	restarts   int // starts again at block 0 in this download
	retry      backoff
	retryAt    time.Time // no block request before
	retryAfter time.Duration
	savedAt    uint64 // Offset when firmware.json was last written
	// traces holds the traceparent of the firmware reports, by seq.
	traces map[uint64]string
}

// openFirmware restores the update machine: firmware.json, the staged image
// and the trusted keys.
func (a *Agent) openFirmware() error {
	fw := &a.fw
	fw.retry = backoff{min: a.cfg.RetryMin, max: a.cfg.RetryMax, rnd: a.rnd}
	fw.traces = map[uint64]string{}
	fw.st = firmwareState{Running: a.cfg.Firmware, Configured: a.cfg.Firmware}
	if fw.keys == nil {
		keys, err := a.cfg.FirmwareUpdate.trustedKeys()
		if err != nil {
			return err
		}
		fw.keys = keys
	}
	if a.cfg.StateDir != "" {
		fw.stage = stage{dir: filepath.Join(a.cfg.StateDir, FirmwareDir), sync: !a.cfg.NoSync}
		st, err := a.loadFirmware()
		if err != nil {
			return err
		}
		fw.st = st
	}
	keep := ""
	if t := fw.st.Target; t != nil {
		keep = t.SHA256
		n, err := fw.stage.open(t.SHA256, fw.st.Offset)
		if err != nil {
			return err
		}
		switch fw.st.State {
		case coap.FWDownloading:
			if bs := fw.st.BlockSize; bs > 0 && n < t.Size {
				n -= n % bs // whole blocks only
			}
			if n != fw.st.Offset {
				a.log.Info("firmware download resumes before its saved progress", slog.Uint64(keyOffset, n), slog.Uint64("saved", fw.st.Offset))
			}
			fw.st.Offset = n
		case coap.FWDownloaded:
			if n != t.Size {
				// The image is gone: fetch it again.
				a.log.Warn("staged firmware image missing; downloading it again", slog.String(keyPath, fw.stage.path()))
				fw.st.State, fw.st.Offset = coap.FWDownloading, 0
				if _, err := fw.stage.open(t.SHA256, 0); err != nil {
					return err
				}
			}
		}
		fw.savedAt = fw.st.Offset
	}
	if err := fw.stage.clean(keep); err != nil {
		return err
	}
	if a.cfg.StateDir != "" && fw.st.Target != nil {
		a.log.Info("firmware update resumes", slog.Int(keyFWState, fw.st.State), slog.String(keyVersion, fw.st.Target.Version),
			slog.Uint64(keyOffset, fw.st.Offset))
	}
	a.publishFirmware()
	return nil
}

// trustedKeys reads the keys of TrustedKeys and TrustedKeysFile; none is
// not an error (every image then fails its check).
func (c FirmwareUpdate) trustedKeys() (manifest.Keys, error) {
	var keys manifest.Keys
	if len(c.TrustedKeys) > 0 {
		k, err := manifest.ParsePublicKeys(c.TrustedKeys)
		if err != nil {
			return nil, fmt.Errorf("agent: firmware_update.trusted_keys: %w", err)
		}
		keys = append(keys, k...)
	}
	if c.TrustedKeysFile != "" {
		data, err := os.ReadFile(c.TrustedKeysFile)
		if err != nil {
			return nil, fmt.Errorf("agent: firmware_update.trusted_keys_file: %w", err)
		}
		k, err := manifest.ParsePublicKeys(data)
		if err != nil {
			return nil, fmt.Errorf("agent: firmware_update.trusted_keys_file: %s: %w", c.TrustedKeysFile, err)
		}
		keys = append(keys, k...)
	}
	return keys, nil
}

// loadFirmware reads firmware.json. A missing file is a device that never
// updated; an unreadable one is moved aside.
func (a *Agent) loadFirmware() (firmwareState, error) {
	fresh := firmwareState{Running: a.cfg.Firmware, Configured: a.cfg.Firmware}
	path := filepath.Join(a.cfg.StateDir, FirmwareFile)
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fresh, nil
	}
	if err != nil {
		return firmwareState{}, fmt.Errorf("agent: firmware state: %w", err)
	}
	var st firmwareState
	err = json.Unmarshal(b, &st)
	if err == nil {
		err = st.check()
	}
	if err != nil {
		aside := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
		a.log.Error("firmware state unreadable, moved aside; the device runs its configured firmware", slog.String(keyPath, aside), slog.Any(keyErr, err))
		if err := os.Rename(path, aside); err != nil {
			return firmwareState{}, fmt.Errorf("agent: firmware state: %w", err)
		}
		return fresh, nil
	}
	if st.Configured != a.cfg.Firmware {
		a.log.Info("configured firmware changed since the last update; running it", slog.String(keyVersion, a.cfg.Firmware),
			slog.String("saved", st.Running))
		return fresh, nil
	}
	return st, nil
}

// check refuses a state the agent could not act on safely (the target's
// SHA-256 names a file).
func (st firmwareState) check() error {
	if st.Running == "" {
		return errors.New("no running version")
	}
	if st.State < coap.FWIdle || st.State > coap.FWUpdating || st.Result < coap.FWResultInitial || st.Result > coap.FWResultDeferred {
		return fmt.Errorf("state %d, result %d", st.State, st.Result)
	}
	if (st.State == coap.FWIdle) != (st.Target == nil) {
		return errors.New("target does not match the state")
	}
	if st.Target != nil {
		if err := manifest.ValidateSHA256(st.Target.SHA256); err != nil {
			return fmt.Errorf("target sha256: %w", err)
		}
		if st.Offset > st.Target.Size {
			return errors.New("offset beyond the image")
		}
		if bs := st.BlockSize; st.State == coap.FWDownloading && (bs < 16 || bs > coap.FirmwareMaxBlockSize || bs&(bs-1) != 0) {
			return fmt.Errorf("block size %d", bs)
		}
	}
	return nil
}

// saveFirmware writes firmware.json, after making the staged bytes it
// counts durable.
func (a *Agent) saveFirmware() {
	if a.cfg.StateDir == "" {
		return
	}
	if err := a.fw.stage.flush(); err != nil {
		a.log.Error("cannot save the firmware image", slog.Any(keyErr, err))
		return
	}
	st := a.fw.st
	st.SavedAt = time.Now().UTC()
	b, err := json.MarshalIndent(st, "", "  ")
	if err == nil {
		err = writeFileAtomic(filepath.Join(a.cfg.StateDir, FirmwareFile), append(b, '\n'), !a.cfg.NoSync)
	}
	if err != nil {
		a.log.Error("cannot save the firmware state", slog.Any(keyErr, err))
		return
	}
	a.fw.savedAt = st.Offset
}

// Firmware returns what the agent knows of the device's firmware. It is
// safe to call from any goroutine.
func (a *Agent) Firmware() FirmwareStatus {
	return *a.fwStatus.Load()
}

// publishFirmware makes the update machine's state visible to Firmware.
func (a *Agent) publishFirmware() {
	st := &a.fw.st
	s := FirmwareStatus{Running: st.Running, State: st.State, Result: st.Result, Downloaded: st.Offset, Installs: st.Installs}
	if st.Target != nil {
		s.TargetVersion, s.TargetSHA256 = st.Target.Version, st.Target.SHA256
	}
	a.fwStatus.Store(&s)
}

// followFirmware takes the desired state's `fw` (nil when absent); the
// update machine acts on it in firmwareStep.
func (a *Agent) followFirmware(t *coap.FirmwareTarget) {
	a.fw.want, a.fw.seen = t, true
}

// firmwareStep runs the update machine for one loop pass: it starts,
// cancels, downloads (a bounded amount), completes, defers and installs.
func (a *Agent) firmwareStep(ctx context.Context) {
	st := &a.fw.st
	if st.State == coap.FWUpdating {
		a.update(ctx) // after a restart: finish what was started
		return
	}
	a.pruneTraces()
	if !a.fw.seen {
		return
	}
	want := a.fw.want
	if st.Target != nil {
		if want == nil || want.SHA256 != st.Target.SHA256 {
			a.cancelUpdate(want)
		} else {
			// The same image: only the permission and the trace move.
			st.Target.Install, st.Target.Trace = want.Install, want.Trace
		}
	}
	if st.State == coap.FWIdle {
		a.startUpdate(a.now())
	}
	if st.State == coap.FWDownloading {
		a.download(ctx)
	}
	if st.State == coap.FWDownloaded {
		a.maybeInstall(ctx, a.now())
	}
}

// firmwareWake is when the update machine next needs the loop; zero when it
// waits for nothing in particular (a desired state, a report).
func (a *Agent) firmwareWake(now time.Time) time.Time {
	st := &a.fw.st
	switch st.State {
	case coap.FWUpdating:
		return now
	case coap.FWDownloading:
		if a.canDownload() {
			return maxTime(now, a.fw.retryAt)
		}
	case coap.FWDownloaded:
		if want := a.fw.want; a.fw.seen && want != nil && want.Install && !st.Deferred && !st.BusySince.IsZero() {
			return st.BusySince.Add(a.cfg.FirmwareUpdate.MaxDeferPeriod)
		}
	case coap.FWIdle:
		if f, want := st.Failed, a.fw.want; f != nil && want != nil && want.SHA256 == f.SHA256 && !f.RetryAt.IsZero() {
			return f.RetryAt
		}
	}
	return time.Time{}
}

func maxTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return b
	}
	return a
}

// startUpdate starts downloading the desired image when it is new to the
// device: not the running version, not an image that failed. The checks
// that need no download come first.
func (a *Agent) startUpdate(now time.Time) {
	st := &a.fw.st
	want := a.fw.want
	if want == nil || want.Version == st.Running {
		return
	}
	if f := st.Failed; f != nil && f.SHA256 == want.SHA256 && (f.RetryAt.IsZero() || now.Before(f.RetryAt)) {
		return
	}
	t := *want
	t.Models = slices.Clone(want.Models)
	t.Signature = slices.Clone(want.Signature)
	if err := manifest.ValidateSHA256(t.SHA256); err != nil {
		a.failUpdate(&t, coap.FWResultInvalidURI, fmt.Errorf("sha256 %q: %w", t.SHA256, err))
		return
	}
	if !slices.Contains(t.Models, a.cfg.Model) {
		a.failUpdate(&t, coap.FWResultUnsupported, fmt.Errorf("model %q is not one of %q", a.cfg.Model, t.Models))
		return
	}
	if err := a.verifyManifest(&t); err != nil {
		a.failUpdate(&t, coap.FWResultIntegrity, err)
		return
	}
	if a.cfg.StateDir == "" && t.Size > maxMemoryImage {
		a.failUpdate(&t, coap.FWResultNoMemory, fmt.Errorf("%d bytes, more than %d in memory", t.Size, maxMemoryImage))
		return
	}
	if _, err := a.fw.stage.open(t.SHA256, 0); err != nil {
		a.failUpdate(&t, coap.FWResultNoStorage, err)
		return
	}
	*st = firmwareState{
		Running: st.Running, Previous: st.Previous, Configured: st.Configured, Failed: st.Failed, Installs: st.Installs,
		Target: &t, BlockSize: coap.FirmwareMaxBlockSize,
	}
	a.fw.failures, a.fw.restarts, a.fw.retryAt = 0, 0, time.Time{}
	a.fw.retry.reset()
	a.log.Info("firmware download starts", slog.String(keyVersion, t.Version), slog.String(keySHA256, t.SHA256), slog.Uint64(keyBytes, t.Size))
	a.fwTransition(coap.FWDownloading, coap.FWResultInitial, t.Trace)
}

// verifyManifest checks the target's signature with the trusted keys.
func (a *Agent) verifyManifest(t *coap.FirmwareTarget) error {
	m := manifest.Manifest{Models: t.Models, Version: t.Version, SHA256: t.SHA256, Size: t.Size}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	if len(a.fw.keys) == 0 {
		return errors.New("no trusted firmware keys (firmware_update.trusted_keys_file)")
	}
	if _, err := a.fw.keys.Verify(m, t.Signature); err != nil {
		return err
	}
	return nil
}

// canDownload says whether the server is there to download from: the
// agent is registered (so it has seen the current desired state) and its
// last exchange went through.
func (a *Agent) canDownload() bool {
	return a.registered && a.trouble == troubleNone
}

// download fetches blocks for one pass, and checks the image when the last
// one came.
func (a *Agent) download(ctx context.Context) {
	if !a.canDownload() || a.now().Before(a.fw.retryAt) {
		return
	}
	start := a.now()
	for range blocksPerPass {
		if !a.fetchBlock(ctx) || a.now().Sub(start) >= passBudget {
			break
		}
	}
	if a.fw.st.State == coap.FWDownloading && a.fw.st.Offset != a.fw.savedAt {
		a.saveFirmware()
		a.publishFirmware()
	}
}

// fetchBlock is one GET /fw/{sha256} with Block2, sent NON as protocol
// section 7.1 recommends. It reports whether the download may go on at
// once.
func (a *Agent) fetchBlock(ctx context.Context) bool {
	st := &a.fw.st
	t := st.Target
	num := st.Offset / st.BlockSize
	opt, err := blockwise.EncodeBlockOption(szxOf(st.BlockSize), int64(num), false)
	if err != nil {
		a.failUpdate(t, coap.FWResultNoStorage, fmt.Errorf("block %d: %w", num, err))
		return false
	}
	resp, err := a.link.do(ctx, min(a.cfg.RequestTimeout, blockTimeout), request{
		method: codes.GET, path: coap.PathFirmware + "/" + t.SHA256, block2: &opt, trace: t.Trace, non: true,
	})
	if ctx.Err() != nil {
		return false
	}
	if err != nil {
		a.blockFailed(err)
		return false
	}
	switch {
	case resp.code == codes.Content:
		return a.storeBlock(resp)
	case resp.code == codes.NotFound || resp.code == codes.BadRequest:
		a.failUpdate(t, coap.FWResultInvalidURI, fmt.Errorf("server has no image %s: %v %s", t.SHA256, resp.code, resp.diagnostic()))
	case resp.code == codes.BadOption:
		// A block past the end of the image: complete, or the bookkeeping
		// is wrong.
		if st.Offset == t.Size {
			a.completeDownload()
			return false
		}
		a.restartDownload(fmt.Errorf("server refused block %d (4.02): %s", num, resp.diagnostic()))
		return a.fw.st.State == coap.FWDownloading
	case resp.code == codes.Forbidden:
		// The credential was revoked or replaced: the agent waits as after
		// any refusal, then registers again on a new session.
		err := statusError("firmware", resp)
		kind, wait := a.classify(err)
		a.trouble, a.retryAt = kind, a.now().Add(wait)
		a.log.Warn("server refused the firmware download; waiting", slog.Duration(keyRetryIn, wait), slog.Any(keyErr, err))
	case (resp.code == codes.ServiceUnavailable || resp.code == codes.TooManyRequests) && resp.maxAge > 0:
		wait := jitter(a.rnd, resp.maxAge)
		a.fw.retryAt = a.now().Add(wait)
		a.log.Info("firmware server busy; waiting as it asked", slog.Duration(keyRetryIn, wait))
	default:
		a.blockFailed(statusError("firmware", resp))
	}
	return false
}

// storeBlock checks a 2.05 to a block request and stages its payload. The
// ETag and Size2 must be those of the target: anything else is the server
// serving another image, and the download is discarded (result 5).
func (a *Agent) storeBlock(resp response) bool {
	st := &a.fw.st
	t := st.Target
	num, more, size := uint64(0), false, st.BlockSize // no Block2: the whole image
	if resp.hasBlock2 {
		szx, n, m, err := blockwise.DecodeBlockOption(resp.block2)
		if err != nil || szx > blockwise.SZX1024 {
			a.blockFailed(fmt.Errorf("firmware: Block2 option %#x", resp.block2))
			return false
		}
		num, more, size = uint64(n), m, uint64(szx.Size())
	}
	if want, _ := hex.DecodeString(t.SHA256[:2*coap.FirmwareETagLength]); resp.etag != nil && !bytes.Equal(resp.etag, want) {
		a.failUpdate(t, coap.FWResultIntegrity, fmt.Errorf("server sent ETag %x for image %s", resp.etag, t.SHA256))
		return false
	}
	if resp.hasSize2 && uint64(resp.size2) != t.Size {
		a.failUpdate(t, coap.FWResultIntegrity, fmt.Errorf("server says the image has %d bytes, not %d", resp.size2, t.Size))
		return false
	}
	off := num * size
	end := off + uint64(len(resp.body))
	switch {
	case off > st.Offset || (more && uint64(len(resp.body)) != size):
		a.blockFailed(fmt.Errorf("firmware: block %d of %d bytes (more %v) does not continue the %d bytes staged", num, len(resp.body), more, st.Offset))
		return false
	case end > t.Size:
		a.failUpdate(t, coap.FWResultIntegrity, fmt.Errorf("the image is longer than %d bytes", t.Size))
		return false
	}
	if err := a.fw.stage.writeAt(off, resp.body); err != nil {
		a.failUpdate(t, coap.FWResultNoStorage, err)
		return false
	}
	st.Offset, st.BlockSize = end, min(st.BlockSize, size)
	a.fw.failures = 0
	a.fw.retry.reset()
	if more {
		return true
	}
	a.completeDownload()
	return false
}

// restartDownload starts the download again at block 0, or ends it with
// result 5 when it has started again too often.
func (a *Agent) restartDownload(why error) {
	t := a.fw.st.Target
	a.fw.restarts++
	if a.fw.restarts > maxImageRestarts {
		a.failUpdate(t, coap.FWResultIntegrity, fmt.Errorf("started again %d times, the last because %w", maxImageRestarts, why))
		return
	}
	a.log.Info("firmware download starts again at block 0", slog.String(keySHA256, t.SHA256), slog.Any(keyReason, why))
	if _, err := a.fw.stage.open(t.SHA256, 0); err != nil {
		a.failUpdate(t, coap.FWResultNoStorage, err)
		return
	}
	a.fw.st.Offset, a.fw.st.BlockSize = 0, coap.FirmwareMaxBlockSize
}

// szxOf is the SZX of a block size (16 to 1024 bytes).
func szxOf(size uint64) blockwise.SZX {
	szx := blockwise.SZX16
	for szx < blockwise.SZX1024 && uint64(szx.Size()) < size {
		szx++
	}
	return szx
}

// blockFailed counts a failed block request: the download backs off, and
// ends with result 4 after maxBlockFailures in a row.
func (a *Agent) blockFailed(err error) {
	a.fw.failures++
	if a.fw.failures >= maxBlockFailures {
		a.failUpdate(a.fw.st.Target, coap.FWResultLinkLost, fmt.Errorf("%d block requests failed in a row, the last: %w", a.fw.failures, err))
		return
	}
	wait := a.fw.retry.next()
	a.fw.retryAt = a.now().Add(wait)
	a.log.Debug("firmware block request failed; retrying", slog.Uint64(keyOffset, a.fw.st.Offset),
		slog.Duration(keyRetryIn, wait), slog.Any(keyErr, err))
}

// completeDownload checks the size and SHA-256 of the downloaded image,
// then its signature.
func (a *Agent) completeDownload() {
	st := &a.fw.st
	t := st.Target
	size, sum, err := a.fw.stage.sum()
	switch {
	case err != nil:
		a.failUpdate(t, coap.FWResultNoStorage, err)
		return
	case size != t.Size || sum != t.SHA256:
		a.failUpdate(t, coap.FWResultIntegrity, fmt.Errorf("downloaded %d bytes with SHA-256 %s, want %d bytes with %s", size, sum, t.Size, t.SHA256))
		return
	}
	if err := a.verifyManifest(t); err != nil {
		a.failUpdate(t, coap.FWResultIntegrity, err)
		return
	}
	a.log.Info("firmware downloaded and verified", slog.String(keyVersion, t.Version), slog.String(keySHA256, t.SHA256))
	a.fwTransition(coap.FWDownloaded, st.Result, t.Trace)
}

// maybeInstall installs the downloaded image when the server allows it and
// the device is idle; a device kept busy past MaxDeferPeriod reports the
// update deferred, once, and goes on waiting.
func (a *Agent) maybeInstall(ctx context.Context, now time.Time) {
	st := &a.fw.st
	if !a.fw.want.Install {
		if !st.BusySince.IsZero() {
			st.BusySince = time.Time{}
			a.saveFirmware()
		}
		return
	}
	if a.deviceIdle() {
		st.Installed = false
		st.Installs++
		a.log.Info("firmware install starts", slog.String(keyVersion, st.Target.Version), slog.String(keySHA256, st.Target.SHA256))
		a.fwTransition(coap.FWUpdating, coap.FWResultInitial, st.Target.Trace)
		a.update(ctx)
		return
	}
	if st.BusySince.IsZero() {
		st.BusySince = now
		a.saveFirmware()
		a.log.Info("firmware install allowed but the device is busy; waiting for it to be idle", slog.String(keyState, a.clinical))
	}
	if !st.Deferred && !now.Before(st.BusySince.Add(a.cfg.FirmwareUpdate.MaxDeferPeriod)) {
		st.Deferred = true
		a.log.Info("firmware install deferred: the device has been busy for the maximum defer period",
			slog.Duration("max_defer_period", a.cfg.FirmwareUpdate.MaxDeferPeriod))
		a.fwTransition(coap.FWDownloaded, coap.FWResultDeferred, st.Target.Trace)
	}
}

// deviceIdle says whether the device itself is idle, as of its latest
// report: neither in use, charging nor in fault.
func (a *Agent) deviceIdle() bool {
	return !a.inUse.Load() && a.clinical == coap.StateIdle
}

// update installs the image, runs the self-test and commits, or rolls
// back. A restarted agent in Updating comes here first.
func (a *Agent) update(ctx context.Context) {
	st := &a.fw.st
	t := st.Target
	img := a.fw.stage.image(*t)
	if !st.Installed {
		size, sum, err := a.fw.stage.sum()
		if err == nil && (size != t.Size || sum != t.SHA256) {
			err = fmt.Errorf("staged image has %d bytes with SHA-256 %s", size, sum)
		}
		if err != nil {
			a.failUpdate(t, coap.FWResultIntegrity, err)
			return
		}
		err = a.fw.installer.Install(ctx, img)
		if ctx.Err() != nil {
			return // stopping: a restarted agent installs again
		}
		if err != nil {
			a.rollback(ctx, img)
			a.failUpdate(t, coap.FWResultFailed, fmt.Errorf("install: %w", err))
			return
		}
		st.Installed = true
		a.saveFirmware()
	}
	err := a.fw.installer.SelfTest(ctx, img)
	if ctx.Err() != nil {
		return // a restarted agent runs the self-test again
	}
	if err != nil {
		a.rollback(ctx, img)
		a.failUpdate(t, coap.FWResultFailed, fmt.Errorf("self-test: %w", err))
		return
	}
	a.fw.stage.remove()
	*st = firmwareState{Running: t.Version, Previous: st.Running, Configured: st.Configured, Failed: st.Failed, Installs: st.Installs}
	a.log.Info("firmware updated; registering with the new version", slog.String(keyVersion, t.Version), slog.String("previous", st.Previous))
	// The server confirms the update from the registration alone.
	a.registered = false
	a.fwTransition(coap.FWIdle, coap.FWResultSuccess, t.Trace)
}

// rollback goes back to the previous image.
func (a *Agent) rollback(ctx context.Context, img Image) {
	if err := a.fw.installer.Rollback(ctx, img); err != nil {
		a.log.Error("firmware rollback failed: the device may not run its previous image", slog.String(keyVersion, a.fw.st.Running),
			slog.Any(keyErr, err))
	}
}

// cancelUpdate abandons the target before Updating: the server withdrew it
// or wants another image.
func (a *Agent) cancelUpdate(want *coap.FirmwareTarget) {
	st := &a.fw.st
	t := st.Target
	attrs := []any{slog.String(keyVersion, t.Version), slog.String(keySHA256, t.SHA256)}
	if want != nil {
		attrs = append(attrs, slog.String("desired", want.SHA256))
	}
	a.log.Info("firmware update cancelled by the server", attrs...)
	a.fw.stage.remove()
	*st = firmwareState{Running: st.Running, Previous: st.Previous, Configured: st.Configured, Failed: st.Failed, Installs: st.Installs}
	a.fw.retryAt = time.Time{}
	a.fwTransition(coap.FWIdle, coap.FWResultCancelled, t.Trace)
}

// failUpdate ends an update with result, back in Idle, and remembers the
// image so as not to try it again (after result 4, not before a while).
func (a *Agent) failUpdate(t *coap.FirmwareTarget, result int, err error) {
	st := &a.fw.st
	if st.Target != nil {
		a.fw.stage.remove()
	}
	f := &firmwareFailure{SHA256: t.SHA256, Result: result}
	if result == coap.FWResultLinkLost {
		f.RetryAt = a.now().Add(jitter(a.rnd, a.fw.retryAfter))
	}
	*st = firmwareState{Running: st.Running, Previous: st.Previous, Configured: st.Configured, Failed: f, Installs: st.Installs}
	a.fw.retryAt = time.Time{}
	a.log.Warn("firmware update failed", slog.Int(keyFWResult, result), slog.String(keyVersion, t.Version),
		slog.String(keySHA256, t.SHA256), slog.Any(keyErr, err))
	a.fwTransition(coap.FWIdle, result, t.Trace)
}

// fwTransition enters state with result, saves it, and takes a report at
// once so that the server sees every step; the report carries trace.
func (a *Agent) fwTransition(state, result int, trace string) {
	a.fw.st.State, a.fw.st.Result = state, result
	a.saveFirmware()
	a.publishFirmware()
	a.takeReport(a.now())
	if trace != "" {
		a.fw.traces[a.lastSeq] = trace
	}
}

// pruneTraces forgets the traces of settled reports.
func (a *Agent) pruneTraces() {
	acked := a.queue.Acked()
	for seq := range a.fw.traces {
		if seq <= acked {
			delete(a.fw.traces, seq)
		}
	}
}
