package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// Everything here writes to an io.Writer and takes the current time as a
// value, so that the golden tests pin the output byte for byte.

// jsonOptions are the protojson options of -o json: field names in
// lowerCamelCase, zero values omitted, as the API's JSON mapping has them.
var jsonOptions = protojson.MarshalOptions{Multiline: true, Indent: "  "}

// writeJSON writes m as protojson followed by a newline.
func writeJSON(w io.Writer, m proto.Message) error {
	b, err := jsonOptions.Marshal(m)
	if err != nil {
		return err
	}
	// protojson adds random whitespace on purpose, so that nobody compares
	// its output byte for byte. Scripts and golden files do; re-indent.
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return err
	}
	buf.WriteByte('\n')
	_, err = w.Write(buf.Bytes())
	return err
}

// writeJSONValue writes a plain Go value as indented JSON.
func writeJSONValue(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

// writeDeviceTable writes one page of devices, or all of them, as a table
// with a footer that counts them and, when there are more pages, says how to
// get the next one.
func writeDeviceTable(w io.Writer, resp *medfleetv1.ListDevicesResponse, now time.Time) error {
	devices := resp.GetDevices()
	if len(devices) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPROFILE\tMODEL\tFIRMWARE\tUSAGE (h)\tSTATE\tCONN\tLAST SEEN")
		for _, d := range devices {
			st := d.GetStatus()
			conn := connectivityWord(st.GetConnectivity())
			if d.GetDecommissionTime() != nil {
				// Refused over CoAP whatever its last contact says.
				conn = "decommissioned"
			}
			fmt.Fprintln(tw, strings.Join([]string{
				cell(deviceID(d.GetName())),
				cell(d.GetProfile()),
				cell(d.GetModel()),
				cell(st.GetFirmwareVersion()),
				strconv.FormatFloat(st.GetUsageHours(), 'f', 1, 64),
				clinicalStateWord(st.GetClinicalState()),
				conn,
				lastSeen(st.GetLastSeenTime(), now),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, listFooter(len(devices), resp.GetTotalSize(), resp.GetNextPageToken()))
	return err
}

// listFooter counts the devices shown: "3 devices" when that is all of them
// (or the server did not count), "50 of 120 devices" when it is not, and the
// flag that gets the next page.
func listFooter(shown int, total int32, next string) string {
	n, s := shown, fmt.Sprintf("%d", shown)
	if int(total) > shown {
		n, s = int(total), fmt.Sprintf("%d of %d", shown, total)
	}
	if n == 1 {
		s += " device"
	} else {
		s += " devices"
	}
	if next != "" {
		s += ", more: --page-token " + next
	}
	return s
}

// detailKeyWidth aligns the values of writeDevice: the longest key is
// "decommissioned:".
const detailKeyWidth = 16

// writeDevice writes everything known about a device as "key: value" lines,
// maps sorted by key with one entry a line.
func writeDevice(w io.Writer, d *medfleetv1.Device, now time.Time) error {
	st := d.GetStatus()
	var b strings.Builder
	line := func(key, value string) {
		if key != "" {
			key += ":"
		}
		fmt.Fprintf(&b, "%-*s%s\n", detailKeyWidth, key, value)
	}
	mapLines := func(key string, entries []string) {
		if len(entries) == 0 {
			line(key, "-")
			return
		}
		line(key, entries[0])
		for _, e := range entries[1:] {
			line("", e)
		}
	}

	line("name", cell(d.GetName()))
	line("profile", cell(d.GetProfile()))
	line("model", cell(d.GetModel()))
	line("manufacturer", cell(d.GetManufacturer()))
	line("serial", cell(d.GetSerial()))
	line("udi", cell(d.GetUdi()))
	if u := d.GetUdiCarrier(); u != nil {
		var parts []string
		for _, p := range [][2]string{{"device identifier", u.GetDeviceIdentifier()}, {"lot", u.GetLot()},
			{"made", u.GetManufactureDate()}, {"expires", u.GetExpiryDate()}} {
			if p[1] != "" {
				parts = append(parts, p[0]+" "+p[1])
			}
		}
		line("", strings.Join(parts, ", "))
	}
	line("asset tag", cell(d.GetAssetTag()))
	line("risk class", riskClassWord(d.GetRiskClass()))
	line("site", cell(d.GetSite()))
	line("rfid tag", cell(d.GetRfidTag()))
	mapLines("labels", mapEntries(d.GetLabels(), cell))
	line("firmware", cell(st.GetFirmwareVersion()))
	line("usage", fmt.Sprintf("%s h (%s s)",
		strconv.FormatFloat(st.GetUsageHours(), 'f', 1, 64), number(st.GetUsageSeconds())))
	line("clinical state", clinicalStateWord(st.GetClinicalState()))
	line("availability", availabilityWord(st.GetAvailability()))
	line("connectivity", connectivityWord(st.GetConnectivity()))
	line("last seen", timeAndAge(st.GetLastSeenTime(), now, "never"))
	line("registered", timeAndAge(st.GetRegistrationTime(), now, "never"))
	line("lifetime", lifetime(st))
	line("battery", battery(st))
	line("wifi", wifi(st))
	mapLines("alarms", mapEntries(st.GetAlarmCounts(), number))
	mapLines("telemetry", mapEntries(st.GetTelemetry(), number))
	line("reports", fmt.Sprintf("%d accepted, %d duplicate", st.GetReportsAccepted(), st.GetReportsDuplicate()))
	line("created", timeAndAge(d.GetCreateTime(), now, "-"))
	line("updated", timeAndAge(d.GetUpdateTime(), now, "-"))
	if d.GetDecommissionTime() != nil {
		line("decommissioned", timeAndAge(d.GetDecommissionTime(), now, "-"))
	}
	line("etag", cell(d.GetEtag()))

	_, err := io.WriteString(w, b.String())
	return err
}

// writeDecommissioned confirms a DeleteDevice in one line.
func writeDecommissioned(w io.Writer, d *medfleetv1.Device, now time.Time) error {
	s := "decommissioned " + cell(d.GetName())
	if t := d.GetDecommissionTime(); t != nil {
		s += " at " + timeAndAge(t, now, "-")
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

// deviceID is the last part of a resource name: "devices/pump-0001" ->
// "pump-0001".
func deviceID(name string) string {
	return strings.TrimPrefix(name, devicesPrefix)
}

// cell makes a string safe for a table cell or a value: "-" when empty,
// and quoted when it holds control characters, which a device could
// otherwise use to write escape sequences to the operator's terminal.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	if strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
		return strconv.QuoteToGraphic(s)
	}
	return s
}

// number formats a float without exponent and without trailing zeros.
func number(v float64) string {
	return strconv.FormatFloat(v, 'f', -1, 64)
}

// mapEntries renders a map as "key=value" strings sorted by key.
func mapEntries[V any](m map[string]V, format func(V) string) []string {
	keys := slices.Sorted(maps.Keys(m))
	entries := make([]string, 0, len(keys))
	for _, k := range keys {
		entries = append(entries, cell(k)+"="+format(m[k]))
	}
	return entries
}

// clinicalStateWord is the state as the --state flag spells it: "in_use";
// "-" when the device has not said.
func clinicalStateWord(s medfleetv1.ClinicalState) string {
	if s == medfleetv1.ClinicalState_CLINICAL_STATE_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(s.String(), "CLINICAL_STATE_"))
}

// connectivityWord is "online" or "offline"; "-" when unspecified.
func connectivityWord(c medfleetv1.Connectivity) string {
	if c == medfleetv1.Connectivity_CONNECTIVITY_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(c.String(), "CONNECTIVITY_"))
}

// lastSeen is the age of the last contact, "never" without one.
func lastSeen(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "never"
	}
	return age(now.Sub(t.AsTime()))
}

// timeAndAge is "2026-03-01T11:59:56Z (4s ago)", or none when t is unset.
func timeAndAge(t *timestamppb.Timestamp, now time.Time, none string) string {
	if t == nil {
		return none
	}
	at := t.AsTime()
	return at.UTC().Format(time.RFC3339) + " (" + age(now.Sub(at)) + ")"
}

// age says how long ago something happened, in its largest whole unit up
// to days: "4s ago", "12m ago", "3h ago", "9d ago". Hours run to 47 so
// that "yesterday evening" does not round to "1d". A time in the future
// (clock skew) is "in 4s".
func age(d time.Duration) string {
	format := "%s ago"
	if d < 0 {
		d, format = -d, "in %s"
	}
	var s string
	switch {
	case d < time.Minute:
		s = fmt.Sprintf("%ds", int64(d/time.Second))
	case d < time.Hour:
		s = fmt.Sprintf("%dm", int64(d/time.Minute))
	case d < 48*time.Hour:
		s = fmt.Sprintf("%dh", int64(d/time.Hour))
	default:
		s = fmt.Sprintf("%dd", int64(d/(24*time.Hour)))
	}
	return fmt.Sprintf(format, s)
}

func lifetime(st *medfleetv1.DeviceStatus) string {
	switch {
	case st.GetLifetimeSeconds() > 0:
		return fmt.Sprintf("%ds", st.GetLifetimeSeconds())
	case st.GetRegistrationTime() != nil:
		return "0s (deregistered)"
	default:
		return "-"
	}
}

func battery(st *medfleetv1.DeviceStatus) string {
	if st == nil || st.BatteryPercent == nil {
		return "-"
	}
	return number(st.GetBatteryPercent()) + "%"
}

func wifi(st *medfleetv1.DeviceStatus) string {
	var parts []string
	if b := st.GetWifiBssid(); b != "" {
		parts = append(parts, "bssid "+cell(b))
	}
	if st != nil && st.WifiRssiDbm != nil {
		parts = append(parts, "rssi "+number(st.GetWifiRssiDbm())+" dBm")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// writeKeyValues writes "key: value" lines, the values aligned one column
// after the longest key.
func writeKeyValues(w io.Writer, kvs [][2]string) error {
	width := 0
	for _, kv := range kvs {
		width = max(width, len(kv[0])+2)
	}
	var b strings.Builder
	for _, kv := range kvs {
		fmt.Fprintf(&b, "%-*s%s\n", width, kv[0]+":", kv[1])
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// countNoun is "1 user", "3 users".
func countNoun(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "ch") || strings.HasSuffix(noun, "s") {
		return fmt.Sprintf("%d %ses", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// roleWord is the role as --role spells it: "biomed"; "-" when unspecified.
func roleWord(r medfleetv1.Role) string {
	if r == medfleetv1.Role_ROLE_UNSPECIFIED {
		return "-"
	}
	return strings.ToLower(strings.TrimPrefix(r.String(), "ROLE_"))
}

// credentialKindWord is the kind as --kind and the credentials file spell
// it: "psk" or "cert".
func credentialKindWord(k medfleetv1.CredentialKind) string {
	switch k {
	case medfleetv1.CredentialKind_CREDENTIAL_KIND_PSK:
		return kindPSK
	case medfleetv1.CredentialKind_CREDENTIAL_KIND_CERTIFICATE:
		return kindCert
	default:
		return "-"
	}
}

// writeCaller writes what GetCaller says about the caller.
func writeCaller(w io.Writer, c *medfleetv1.Caller) error {
	return writeKeyValues(w, [][2]string{
		{"user", cell(c.GetUser())},
		{"role", roleWord(c.GetRole())},
		{"site", siteWord(c.GetSite())},
		{"authenticated by", cell(c.GetAuthenticatedBy())},
	})
}

// siteWord is a site, or "all" when the caller or user is confined to
// none.
func siteWord(site string) string {
	if site == "" {
		return "all"
	}
	return cell(site)
}

// writeUser writes one user as "key: value" lines.
func writeUser(w io.Writer, u *medfleetv1.User, now time.Time) error {
	return writeKeyValues(w, [][2]string{
		{"name", cell(u.GetName())},
		{"role", roleWord(u.GetRole())},
		{"site", siteWord(u.GetSite())},
		{"description", cell(u.GetDescription())},
		{"created", timeAndAge(u.GetCreateTime(), now, "-")},
		{"creator", cell(u.GetCreator())},
		{"etag", cell(u.GetEtag())},
	})
}

// writeUserTable writes users as a table with a count.
func writeUserTable(w io.Writer, users []*medfleetv1.User, now time.Time) error {
	if len(users) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tROLE\tSITE\tCREATED\tCREATOR\tDESCRIPTION")
		for _, u := range users {
			fmt.Fprintln(tw, strings.Join([]string{
				cell(strings.TrimPrefix(u.GetName(), usersPrefix)),
				roleWord(u.GetRole()),
				siteWord(u.GetSite()),
				lastSeen(u.GetCreateTime(), now),
				cell(strings.TrimPrefix(u.GetCreator(), usersPrefix)),
				cell(u.GetDescription()),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(users), "user"))
	return err
}

// writeTokenTable writes tokens as a table with a count: their user and
// id, never a secret (the server has none to give).
func writeTokenTable(w io.Writer, tokens []*medfleetv1.Token, now time.Time) error {
	if len(tokens) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "USER\tTOKEN\tSITE\tCREATED\tEXPIRES\tLAST USED\tDESCRIPTION")
		for _, t := range tokens {
			user, id := tokenParts(t.GetName())
			fmt.Fprintln(tw, strings.Join([]string{
				cell(user),
				cell(id),
				cell(t.GetSite()), // "-": the user's scope, not narrowed
				lastSeen(t.GetCreateTime(), now),
				expires(t.GetExpireTime(), now),
				lastSeen(t.GetLastUseTime(), now),
				cell(t.GetDescription()),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	_, err := fmt.Fprintln(w, countNoun(len(tokens), "token"))
	return err
}

// tokenParts splits "users/{user}/tokens/{token}".
func tokenParts(name string) (user, id string) {
	rest := strings.TrimPrefix(name, usersPrefix)
	user, id, ok := strings.Cut(rest, "/tokens/")
	if !ok {
		return "", name
	}
	return user, id
}

// expires is "in 29d", "expired 3h ago", or "never".
func expires(t *timestamppb.Timestamp, now time.Time) string {
	if t == nil {
		return "never"
	}
	d := t.AsTime().Sub(now)
	if d <= 0 {
		return "expired " + age(-d)
	}
	return age(-d)
}

// writeCredential writes a device credential as "key: value" lines.
func writeCredential(w io.Writer, c *medfleetv1.DeviceCredential, now time.Time) error {
	kvs := [][2]string{
		{"name", cell(c.GetName())},
		{"kind", credentialKindWord(c.GetKind())},
		{"generation", strconv.FormatUint(c.GetGeneration(), 10)},
	}
	if c.GetKind() == medfleetv1.CredentialKind_CREDENTIAL_KIND_CERTIFICATE {
		kvs = append(kvs,
			[2]string{"serial", cell(c.GetCertificateSerial())},
			[2]string{"expires", timeAndAge(c.GetCertificateExpireTime(), now, "-")})
	}
	kvs = append(kvs,
		[2]string{"issued", timeAndAge(c.GetIssueTime(), now, "-")},
		[2]string{"issuer", cell(c.GetIssuer())},
		[2]string{"revoked", timeAndAge(c.GetRevokeTime(), now, "no")},
		[2]string{"etag", cell(c.GetEtag())},
	)
	return writeKeyValues(w, kvs)
}

// writeUserCertFiles says where "user cert" wrote the certificate and key.
func writeUserCertFiles(w io.Writer, f userCertFiles, now time.Time) error {
	return writeKeyValues(w, [][2]string{
		{"certificate", cell(f.Certificate)},
		{"private key", cell(f.PrivateKey)},
		{"expires", timeAndAge(timestamppb.New(f.ExpireTime), now, "-")},
	})
}

// writeAuditTable writes audit records as a table with a footer that counts
// them and, when the listing stopped at --limit, gives the --start that
// continues it.
func writeAuditTable(w io.Writer, resp *medfleetv1.ListAuditRecordsResponse) error {
	records := resp.GetRecords()
	if len(records) > 0 {
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tROLE\tACTION\tTARGET\tOUTCOME\tSOURCE")
		for _, r := range records {
			t := "-"
			if r.GetTime() != nil {
				t = r.GetTime().AsTime().UTC().Format(time.RFC3339)
			}
			fmt.Fprintln(tw, strings.Join([]string{
				strconv.FormatUint(r.GetSequence(), 10),
				t,
				cell(r.GetActor()),
				cell(r.GetRole()),
				cell(shortAction(r.GetAction())),
				cell(r.GetTarget()),
				cell(r.GetOutcome()),
				cell(r.GetSource()),
			}, "\t"))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	s := countNoun(len(records), "record")
	if resp.GetNextPageToken() != "" && len(records) > 0 {
		s += ", more: --start " + strconv.FormatUint(records[len(records)-1].GetSequence(), 10)
	}
	_, err := fmt.Fprintln(w, s)
	return err
}

// shortAction is the method of an API action, "/medfleet.v1.DeviceService/
// CreateDevice" -> "CreateDevice"; other actions ("device.register") as
// they are.
func shortAction(a string) string {
	if strings.HasPrefix(a, "/") {
		return a[strings.LastIndexByte(a, '/')+1:]
	}
	return a
}

// riskClassWord is a risk class as --risk-class takes it.
func riskClassWord(r medfleetv1.RiskClass) string {
	if r == medfleetv1.RiskClass_RISK_CLASS_UNSPECIFIED {
		return "-"
	}
	return strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(r.String(), "RISK_CLASS_")), "_", "-")
}
