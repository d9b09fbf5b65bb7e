package coap

// Firmware update states (fw/state), the numbers of LwM2M object 5
// resource 3.
const (
	FWIdle        = 0
	FWDownloading = 1
	FWDownloaded  = 2
	FWUpdating    = 3
)

// Firmware update results (fw/result), the numbers of LwM2M object 5
// resource 5.
const (
	FWResultInitial     = 0  // reset when a download or an update starts
	FWResultSuccess     = 1  // the new image runs and passed its self-test
	FWResultNoStorage   = 2  // not enough flash for the image
	FWResultNoMemory    = 3  // out of RAM during the download
	FWResultLinkLost    = 4  // the connection was lost during the download
	FWResultIntegrity   = 5  // SHA-256, size or signature check failed
	FWResultUnsupported = 6  // not an image for this device's model
	FWResultInvalidURI  = 7  // the server does not have the image (4.04)
	FWResultFailed      = 8  // the install or the self-test failed; the previous image runs again
	FWResultBadProtocol = 9  // unsupported delivery protocol
	FWResultCancelled   = 10 // the server withdrew the image before the install
	FWResultDeferred    = 11 // busy past the maximum defer period; nothing was installed
)

// Delivery of GET /fw/{sha256}.
const (
	// FirmwareETagLength is how many leading bytes of the image's SHA-256
	// make its ETag.
	FirmwareETagLength = 8
	// FirmwareMaxBlockSize is the largest Block2 size the server sends
	// (SZX 6); a device asking for more gets blocks of this size.
	FirmwareMaxBlockSize = 1024
)

// FirmwareTarget is the `fw` entry of the desired state: an image the
// device should fetch with GET /fw/{sha256}, check, and install when Install
// allows it and the device is idle.
type FirmwareTarget struct {
	// Version the image installs.
	Version string `cbor:"version" json:"version"`
	// SHA256 of the image, 64 lower-case hex digits: GET /fw/{SHA256}.
	SHA256 string `cbor:"sha256" json:"sha256"`
	// Size of the image in bytes.
	Size uint64 `cbor:"size" json:"size"`
	// Models the image is for; the device installs only if its own model
	// is one of them.
	Models []string `cbor:"models" json:"models"`
	// Signature is the ed25519 signature of the manifest (firmware/manifest)
	// made of Models, Version, SHA256 and Size.
	Signature []byte `cbor:"sig" json:"sig"`
	// Install is the control plane's permission to install now: the rollout
	// runs, a maintenance window is open and the device is not in use. A
	// device downloads without it and installs only with it, and only when
	// it is idle itself.
	Install bool `cbor:"install" json:"install"`
	// Trace is a W3C traceparent of the rollout; the device sends it in
	// option 65020 with its downloads and firmware reports.
	Trace string `cbor:"trace,omitempty" json:"trace,omitempty"`
}
