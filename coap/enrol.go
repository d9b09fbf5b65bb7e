package coap

import (
	"fmt"
	"regexp"

	piondtls "github.com/pion/dtls/v3"
	"github.com/plgd-dev/go-coap/v3/message"
)

// PathBootstrap is where a device trades a one-time enrolment token for
// its operational credential: POST /bs?ep={device} over a DTLS session that
// authenticated only the server.
const PathBootstrap = "/bs"

// Credential kinds, as the enrolment payloads name them.
const (
	KindPSK         = "psk"
	KindCertificate = "cert"
)

// DTLS ports: 5684 is CoAP over DTLS (RFC 7252), 5683 plain CoAP.
const (
	PortDTLS  = 5684
	PortPlain = 5683
)

// ServerName is the DNS name in every medfleetd certificate, which agents
// check (they pin Medfleet's CA, and often reach the server by address).
const ServerName = "medfleetd"

// CipherSuites are the DTLS 1.2 suites both sides offer: CCM_8 and GCM for a
// PSK (RFC 7925's mandatory suite first), ECDHE-ECDSA with AES-GCM for
// certificates.
var CipherSuites = []piondtls.CipherSuiteID{
	piondtls.TLS_PSK_WITH_AES_128_CCM_8,
	piondtls.TLS_PSK_WITH_AES_128_GCM_SHA256,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_CCM_8,
	piondtls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
}

// EnrolRequest is the payload of POST /bs: the token and the kind of
// credential the device wants. A device that wants a certificate sends a
// PKCS #10 request (DER) for its own key, which never leaves it.
type EnrolRequest struct {
	Token string `cbor:"token" json:"token"`
	Kind  string `cbor:"kind" json:"kind"`
	CSR   []byte `cbor:"csr,omitempty" json:"csr,omitempty"`
}

// EnrolResponse is the 2.04 payload of POST /bs. PSK is set for KindPSK;
// Certificate (DER) for KindCertificate. CA is the DER of the CA that signs
// medfleetd's DTLS certificate, for the device to keep.
type EnrolResponse struct {
	Kind        string `cbor:"kind" json:"kind"`
	PSK         []byte `cbor:"psk,omitempty" json:"psk,omitempty"`
	Certificate []byte `cbor:"cert,omitempty" json:"cert,omitempty"`
	CA          []byte `cbor:"ca,omitempty" json:"ca,omitempty"`
}

var enrolTokenPattern = regexp.MustCompile(`^mfe_[a-z0-9]{16}_[A-Za-z0-9_-]{43}$`)

// DecodeEnrolRequest decodes and checks a CBOR enrolment request.
func DecodeEnrolRequest(format message.MediaType, data []byte) (*EnrolRequest, error) {
	if format != FormatCBOR {
		return nil, fieldErr("content-format", "%d is not accepted for enrolment: use %d (CBOR)", format, FormatCBOR)
	}
	var r EnrolRequest
	if err := cborDec.Unmarshal(data, &r); err != nil {
		return nil, &FieldError{Field: "payload", Err: fmt.Errorf("not a CBOR enrolment map: %w", err)}
	}
	if !enrolTokenPattern.MatchString(r.Token) {
		return nil, fieldErr("token", "not an enrolment token (mfe_...)")
	}
	switch r.Kind {
	case KindPSK:
		if len(r.CSR) != 0 {
			return nil, fieldErr("csr", "only with kind %q", KindCertificate)
		}
	case KindCertificate:
		if len(r.CSR) == 0 {
			return nil, fieldErr("csr", "required with kind %q", KindCertificate)
		}
	default:
		return nil, fieldErr("kind", "%q is not %q or %q", truncate(r.Kind), KindPSK, KindCertificate)
	}
	return &r, nil
}

// Encode encodes the request as CBOR.
func (r *EnrolRequest) Encode() ([]byte, error) { return cborEnc.Marshal(r) }

// DecodeEnrolResponse decodes a CBOR enrolment response.
func DecodeEnrolResponse(data []byte) (*EnrolResponse, error) {
	var r EnrolResponse
	if err := cborDec.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("enrolment response: %w", err)
	}
	switch {
	case r.Kind == KindPSK && len(r.PSK) < 16:
		return nil, fmt.Errorf("enrolment response: psk of %d bytes", len(r.PSK))
	case r.Kind == KindCertificate && len(r.Certificate) == 0:
		return nil, fmt.Errorf("enrolment response: no certificate")
	case r.Kind != KindPSK && r.Kind != KindCertificate:
		return nil, fmt.Errorf("enrolment response: kind %q", truncate(r.Kind))
	}
	return &r, nil
}

// Encode encodes the response as CBOR.
func (r *EnrolResponse) Encode() ([]byte, error) { return cborEnc.Marshal(r) }
