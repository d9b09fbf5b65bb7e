package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"regexp"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	medfleetv1 "github.com/medfleet/medfleet/proto/medfleet/v1"
)

// devicesPrefix is the collection part of a device's resource name.
const devicesPrefix = "devices/"

// deviceIDPattern is the device id as device.proto defines it.
var deviceIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// parseDeviceID accepts a bare device id ("pump-0001") or a resource name
// ("devices/pump-0001") and returns the id.
func parseDeviceID(arg string) (string, error) {
	id := strings.TrimPrefix(arg, devicesPrefix)
	if !deviceIDPattern.MatchString(id) {
		return "", fmt.Errorf("device id %q: want 1 to 64 characters of [A-Za-z0-9._-], starting with a letter or digit", arg)
	}
	return id, nil
}

func (c *cli) deviceCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "device",
		Aliases: []string{"devices"},
		Short:   "List, show, create, update and decommission devices; enrol and tag them; set their availability",
		Long: `Devices are named by their id, as in "pump-0001", or by their resource
name, as in "devices/pump-0001".`,
		Args: subcommandArgs,
		RunE: missingSubcommand,
	}
	cmd.AddCommand(
		c.deviceListCommand(),
		c.deviceGetCommand(),
		c.deviceCreateCommand(),
		c.deviceUpdateCommand(),
		c.deviceDeleteCommand(),
		c.deviceEnrollCommand(),
		c.deviceCredentialCommand(),
		c.deviceTagCommand(),
		c.deviceStatusCommand(),
		c.deviceCleanCommand(),
		c.deviceImportCommand(),
		c.deviceExportCommand(),
	)
	return cmd
}

// withDeviceClient dials the server, runs fn and closes the connection.
func (c *cli) withDeviceClient(ctx context.Context, fn func(medfleetv1.DeviceServiceClient) error) error {
	return c.withConn(ctx, func(conn *grpc.ClientConn) error {
		return fn(medfleetv1.NewDeviceServiceClient(conn))
	})
}

// printDevice writes a device in the chosen output format.
func (c *cli) printDevice(d *medfleetv1.Device) error {
	if c.flags.output == "json" {
		return writeJSON(c.stdout, d)
	}
	return writeDevice(c.stdout, d, c.now())
}

const listLong = `List devices, ordered by id, one page at a time (--all for every page).

The filter flags are joined by AND into an AIP-160 filter, and so is
--filter, which takes the raw syntax for what the flags cannot say:
  --profile cpap --online --label unit=4-west
    profile = "cpap" AND connectivity = ONLINE AND labels.unit = "4-west"
  --filter 'firmware_version != "2.4.1"'

Filter fields: profile, model, manufacturer, serial, udi, udi_di, lot, asset_tag,
site, rfid_tag, firmware_version, risk_class (LOW, MEDIUM, HIGH, LIFE_SUPPORT),
availability (AVAILABLE, IN_USE, SOILED, IN_MAINTENANCE, OUT_OF_SERVICE),
connectivity (ONLINE, OFFLINE), clinical_state (IDLE, IN_USE, CHARGING, FAULT),
labels.<key>. Operators: = and !=.

With -o json the output is the ListDevicesResponse; with --all, one
response holding the devices of every page.`

func (c *cli) deviceListCommand() *cobra.Command {
	var (
		f                  listFilter
		pageSize           int32
		pageToken          string
		all                bool
		showDecommissioned bool
	)
	cmd := &cobra.Command{
		Use:   "list [flags]",
		Short: "List devices",
		Long:  listLong,
		Example: `  medfleetctl device list --profile infusion-pump --state in_use
  medfleetctl device list --offline --label unit=4-west --all -o json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			filter, err := f.build()
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if pageSize < 0 {
				return usageErrorf(cmd, "--page-size: must not be negative, got %d", pageSize)
			}
			req := &medfleetv1.ListDevicesRequest{
				PageSize:           pageSize,
				PageToken:          pageToken,
				Filter:             filter,
				ShowDecommissioned: showDecommissioned,
			}
			var resp *medfleetv1.ListDevicesResponse
			err = c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				var err error
				resp, err = c.listDevices(cmd.Context(), client, req, all)
				return err
			})
			if err != nil {
				return err
			}
			if c.flags.output == "json" {
				return writeJSON(c.stdout, resp)
			}
			return writeDeviceTable(c.stdout, resp, c.now())
		},
	}
	fl := cmd.Flags()
	f.add(fl)
	fl.Int32Var(&pageSize, "page-size", 0, "devices per page (server default 50, at most 1000)")
	fl.StringVar(&pageToken, "page-token", "", "page to start from, as printed after the previous page")
	fl.BoolVar(&all, "all", false, "follow the pages to the end and print every device")
	fl.BoolVar(&showDecommissioned, "show-decommissioned", false, "include decommissioned devices")
	return cmd
}

// listDevices lists one page, or with all every page from req.PageToken on,
// merged into one response. Each RPC has its own deadline.
func (c *cli) listDevices(ctx context.Context, client medfleetv1.DeviceServiceClient, req *medfleetv1.ListDevicesRequest, all bool) (*medfleetv1.ListDevicesResponse, error) {
	merged := &medfleetv1.ListDevicesResponse{}
	seen := make(map[string]bool)
	for {
		rctx, cancel := c.rpcContext(ctx)
		resp, err := client.ListDevices(rctx, req)
		cancel()
		if err != nil {
			return nil, err
		}
		if !all {
			return resp, nil
		}
		merged.Devices = append(merged.Devices, resp.GetDevices()...)
		merged.TotalSize = resp.GetTotalSize()
		next := resp.GetNextPageToken()
		if next == "" {
			return merged, nil
		}
		if seen[next] {
			return nil, fmt.Errorf("list devices: the server returned page token %q twice", next)
		}
		seen[next] = true
		req.PageToken = next
	}
}

// listFilter holds the filter flags of `device list`.
type listFilter struct {
	profile, model, firmware, site string
	online, offline                bool
	state                          string
	labels                         labelsFlag
	raw                            string // --filter, appended as given
}

// add defines the filter flags.
func (f *listFilter) add(fl *pflag.FlagSet) {
	fl.StringVar(&f.profile, "profile", "", "only devices of this profile")
	fl.StringVar(&f.model, "model", "", "only devices of this model")
	fl.StringVar(&f.firmware, "firmware", "", "only devices running this firmware version")
	fl.StringVar(&f.site, "site", "", "only devices of this site")
	fl.BoolVar(&f.online, "online", false, "only devices that are online")
	fl.BoolVar(&f.offline, "offline", false, "only devices that are offline")
	fl.StringVar(&f.state, "state", "", "only devices in this clinical state: idle, in_use, charging or fault")
	fl.Var(&f.labels, "label", "only devices with this label, key=value (repeatable)")
	fl.StringVar(&f.raw, "filter", "", "AIP-160 filter, ANDed with the other filter flags")
}

// clinicalStates maps --state values to the filter's enum values.
var clinicalStates = map[string]string{
	"idle":     "IDLE",
	"in_use":   "IN_USE",
	"charging": "CHARGING",
	"fault":    "FAULT",
}

// build returns the AIP-160 filter: one comparison per flag given, in a
// fixed order, joined by AND, then --filter. Empty strings filter nothing.
func (f listFilter) build() (string, error) {
	var terms []string
	add := func(field, value string) {
		if value != "" {
			terms = append(terms, field+" = "+strconv.Quote(value))
		}
	}
	add("profile", f.profile)
	add("model", f.model)
	add("firmware_version", f.firmware)
	add("site", f.site)
	switch {
	case f.online && f.offline:
		return "", errors.New("--online and --offline exclude each other")
	case f.online:
		terms = append(terms, "connectivity = ONLINE")
	case f.offline:
		terms = append(terms, "connectivity = OFFLINE")
	}
	if f.state != "" {
		v, ok := clinicalStates[strings.ToLower(f.state)]
		if !ok {
			return "", fmt.Errorf("--state: want idle, in_use, charging or fault, got %q", f.state)
		}
		terms = append(terms, "clinical_state = "+v)
	}
	for _, l := range f.labels {
		terms = append(terms, "labels."+l.key+" = "+strconv.Quote(l.value))
	}
	if raw := strings.TrimSpace(f.raw); raw != "" {
		terms = append(terms, raw)
	}
	return strings.Join(terms, " AND "), nil
}

func (c *cli) deviceGetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "get ID",
		Short: "Show a device: registry, reported status, derived state",
		Args:  exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeviceID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				d, err := client.GetDevice(rctx, &medfleetv1.GetDeviceRequest{Name: devicesPrefix + id})
				if err != nil {
					return err
				}
				return c.printDevice(d)
			})
		},
	}
}

// registryFlags are the writable fields of a device other than labels.
type registryFlags struct {
	profile, model, manufacturer, serial, udi, site, assetTag, riskClass string
}

// add defines the flags; each one's name is its update_mask path.
func (r *registryFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&r.profile, "profile", "", "device profile, e.g. infusion-pump, cpap, rfid-reader")
	fl.StringVar(&r.model, "model", "", "model")
	fl.StringVar(&r.manufacturer, "manufacturer", "", "manufacturer")
	fl.StringVar(&r.serial, "serial", "", "serial number")
	fl.StringVar(&r.udi, "udi", "", "GS1 UDI as scanned, (01)...(21)... or with GS separators; - reads one line from stdin (a scanner)")
	fl.StringVar(&r.site, "site", "", "site the device belongs to; callers confined to a site see only its devices")
	fl.StringVar(&r.assetTag, "asset-tag", "", "the hospital's asset tag (CMMS equipment number)")
	fl.StringVar(&r.riskClass, "risk-class", "", "clinical risk class: low, medium, high or life-support")
}

// registryPaths are the update_mask paths of registryFlags, in proto order;
// each is also the name of its flag, with '-' for '_'.
var registryPaths = []string{"profile", "model", "manufacturer", "serial", "udi", "site", "asset_tag", "risk_class"}

// changedPaths returns the update_mask paths of the flags given on the
// command line, even when given as "" (which clears the field).
func (r *registryFlags) changedPaths(fl *pflag.FlagSet) []string {
	var paths []string
	for _, p := range registryPaths {
		if fl.Changed(strings.ReplaceAll(p, "_", "-")) {
			paths = append(paths, p)
		}
	}
	return paths
}

// riskClasses are the --risk-class words.
var riskClasses = map[string]medfleetv1.RiskClass{
	"": medfleetv1.RiskClass_RISK_CLASS_UNSPECIFIED, "low": medfleetv1.RiskClass_RISK_CLASS_LOW,
	"medium": medfleetv1.RiskClass_RISK_CLASS_MEDIUM, "high": medfleetv1.RiskClass_RISK_CLASS_HIGH,
	"life-support": medfleetv1.RiskClass_RISK_CLASS_LIFE_SUPPORT,
}

// device is the device the flags describe; a --udi of "-" is read from in.
func (r *registryFlags) device(name string, in io.Reader) (*medfleetv1.Device, error) {
	risk, ok := riskClasses[strings.ToLower(r.riskClass)]
	if !ok {
		return nil, fmt.Errorf("--risk-class: want low, medium, high or life-support, got %q", r.riskClass)
	}
	udi := r.udi
	if udi == "-" {
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			return nil, fmt.Errorf("--udi -: nothing on stdin: %v", err)
		}
		udi = strings.TrimRight(line, "\r\n")
	}
	return &medfleetv1.Device{
		Name:         name,
		Profile:      r.profile,
		Model:        r.model,
		Manufacturer: r.manufacturer,
		Serial:       r.serial,
		Udi:          udi,
		Site:         r.site,
		AssetTag:     r.assetTag,
		RiskClass:    risk,
	}, nil
}

func (c *cli) deviceCreateCommand() *cobra.Command {
	var (
		reg       registryFlags
		labels    labelsFlag
		requestID string
	)
	cmd := &cobra.Command{
		Use:   "create [ID] --profile P --model M [flags]",
		Short: "Register a device",
		Long: `Register a device. The device can then register itself over CoAP with
its id as endpoint name.

With --udi, the UDI is checked (GTIN check digit, dates) and stored in its
canonical form, the serial number is taken from it, and a device identifier
that a catalogue model lists (udi_dis) gives the model, manufacturer and
profile. Without ID, the server makes the id of --asset-tag, else of the
UDI's device identifier and serial number.

Each invocation sends a fresh request id, so running the command again is a
new request (and fails with "already exists" if the first one succeeded).
Scripts that retry should pass their own --request-id: a retry with the same
id returns the device the first call created.`,
		Example: `  medfleetctl device create pump-0001 --profile infusion-pump --model "Alaris 8100" --label unit=4-west
  medfleetctl device create --udi '(01)10885403810022(21)12580001' --asset-tag BME-004101
  medfleetctl device create --udi - --asset-tag BME-004102      # then scan the label`,
		Args: rangeArgs(0, 1, "at most one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id := ""
			if len(args) == 1 {
				var err error
				if id, err = parseDeviceID(args[0]); err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
			} else if reg.udi == "" && reg.assetTag == "" {
				return usageErrorf(cmd, "give a device id, or --udi or --asset-tag to make one of")
			}
			if reg.udi == "" && reg.profile == "" {
				return usageErrorf(cmd, "--profile: required (or --udi of a catalogue model)")
			}
			if reg.udi == "" && reg.model == "" {
				return usageErrorf(cmd, "--model: required (or --udi of a catalogue model)")
			}
			lm, err := labels.set()
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			if requestID == "" {
				requestID = newRequestID()
			}
			if len(requestID) > 64 {
				return usageErrorf(cmd, "--request-id: at most 64 characters, got %d", len(requestID))
			}
			d, err := reg.device("", cmd.InOrStdin())
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			d.Labels = lm
			req := &medfleetv1.CreateDeviceRequest{DeviceId: id, Device: d, RequestId: requestID}
			return c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				created, err := client.CreateDevice(rctx, req)
				if err != nil {
					return err
				}
				return c.printDevice(created)
			})
		},
	}
	reg.add(cmd)
	cmd.Flags().Var(&labels, "label", "label key=value (repeatable)")
	cmd.Flags().StringVar(&requestID, "request-id", "", "idempotency key, at most 64 characters (default: a fresh random id)")
	return cmd
}

func (c *cli) deviceUpdateCommand() *cobra.Command {
	var (
		reg          registryFlags
		labels       labelsFlag
		removeLabels []string
		etag         string
	)
	cmd := &cobra.Command{
		Use:   "update ID [flags]",
		Short: "Change the registry part of a device",
		Long: `Change the fields given by flags and no others: the update mask names
exactly the flags on the command line, so --udi "" clears the UDI.

--label and --remove-label edit the labels: the command reads the device,
applies the changes and writes the whole label map back, guarded by the etag
it read, so that a concurrent change fails with "aborted" (exit code 6)
instead of being lost. Other fields are written unguarded unless --etag
is given. --etag sets the etag to guard with; --etag "" sends none.`,
		Example: `  medfleetctl device update pump-0001 --label unit=4-east --remove-label bed
  medfleetctl device update pump-0001 --serial SN-1234 --etag "$ETAG"`,
		Args: exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeviceID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			name := devicesPrefix + id
			d, err := reg.device(name, cmd.InOrStdin())
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			paths := reg.changedPaths(cmd.Flags())
			editLabels := cmd.Flags().Changed("label") || cmd.Flags().Changed("remove-label")
			if len(paths) == 0 && !editLabels {
				return usageErrorf(cmd, "nothing to update: give --profile, --model, --manufacturer, --serial, --udi, --site, --label or --remove-label")
			}
			set, err := labels.set()
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			for _, k := range removeLabels {
				if k == "" {
					return usageErrorf(cmd, "--remove-label: want a label key, got \"\"")
				}
				if _, ok := set[k]; ok {
					return usageErrorf(cmd, "label %q: both --label and --remove-label", k)
				}
			}
			return c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				if editLabels {
					rctx, cancel := c.rpcContext(cmd.Context())
					cur, err := client.GetDevice(rctx, &medfleetv1.GetDeviceRequest{Name: name})
					cancel()
					if err != nil {
						return err
					}
					d.Labels = applyLabels(cur.GetLabels(), set, removeLabels)
					paths = append(paths, "labels")
					if !cmd.Flags().Changed("etag") {
						etag = cur.GetEtag()
					}
				}
				d.Etag = etag
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				updated, err := client.UpdateDevice(rctx, &medfleetv1.UpdateDeviceRequest{
					Device:     d,
					UpdateMask: &fieldmaskpb.FieldMask{Paths: paths},
				})
				if err != nil {
					return err
				}
				return c.printDevice(updated)
			})
		},
	}
	reg.add(cmd)
	cmd.Flags().Var(&labels, "label", "set label key=value (repeatable)")
	cmd.Flags().StringArrayVar(&removeLabels, "remove-label", nil, "remove the label with this `key` (repeatable)")
	cmd.Flags().StringVar(&etag, "etag", "", "update only if the device still has this etag (default: the etag read for --label/--remove-label)")
	return cmd
}

// applyLabels returns a copy of cur with set applied and the keys in
// remove deleted. Removing a key that is not there is not an error.
func applyLabels(cur, set map[string]string, remove []string) map[string]string {
	out := maps.Clone(cur)
	if out == nil {
		out = make(map[string]string)
	}
	maps.Copy(out, set)
	for _, k := range remove {
		delete(out, k)
	}
	return out
}

func (c *cli) deviceDeleteCommand() *cobra.Command {
	var etag string
	cmd := &cobra.Command{
		Use:     "delete ID [flags]",
		Aliases: []string{"decommission"},
		Short:   "Decommission a device",
		Long: `Decommission a device (a soft delete): it keeps its history, is refused
over CoAP, and no longer shows in "device list" unless --show-decommissioned.`,
		Args: exactArgs(1, "one device id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeviceID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				d, err := client.DeleteDevice(rctx, &medfleetv1.DeleteDeviceRequest{Name: devicesPrefix + id, Etag: etag})
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, d)
				}
				return writeDecommissioned(c.stdout, d, c.now())
			})
		},
	}
	cmd.Flags().StringVar(&etag, "etag", "", "decommission only if the device still has this etag")
	return cmd
}

func (c *cli) deviceTagCommand() *cobra.Command {
	var remove bool
	cmd := &cobra.Command{
		Use:   "tag ID EPC | tag ID --remove",
		Short: "Record the RFID tag on a device, or remove it",
		Long: `Record the EPC of the RFID tag fixed to a device (8 to 64 hex digits, in
any case; kept in upper case): the facility's readers then locate the
device by its tag, and "locate tags/EPC" finds it. A tag is on one device
at most: tagging a second device with it fails with "already exists" (exit
code 4) until the first is untagged. --remove untags the device.

With -o json the output is the Device.`,
		Example: `  medfleetctl device tag pump-0001 E28011700000020F1A2B3C4D
  medfleetctl device tag pump-0001 --remove`,
		Args: func(cmd *cobra.Command, args []string) error {
			if remove {
				return exactArgs(1, "one device id with --remove")(cmd, args)
			}
			return exactArgs(2, "a device id and an EPC")(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseDeviceID(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			var epc string
			if !remove {
				if epc, err = parseEPC(args[1]); err != nil {
					return usageError{cmd: cmd.CommandPath(), err: err}
				}
			}
			req := &medfleetv1.UpdateDeviceRequest{
				Device:     &medfleetv1.Device{Name: devicesPrefix + id, RfidTag: epc},
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"rfid_tag"}},
			}
			return c.withDeviceClient(cmd.Context(), func(client medfleetv1.DeviceServiceClient) error {
				rctx, cancel := c.rpcContext(cmd.Context())
				defer cancel()
				d, err := client.UpdateDevice(rctx, req)
				if err != nil {
					return err
				}
				if c.flags.output == "json" {
					return writeJSON(c.stdout, d)
				}
				if d.GetRfidTag() == "" {
					_, err = fmt.Fprintf(c.stdout, "untagged %s\n", cell(deviceID(d.GetName())))
					return err
				}
				_, err = fmt.Fprintf(c.stdout, "tagged %s with %s\n", cell(deviceID(d.GetName())), cell(d.GetRfidTag()))
				return err
			})
		},
	}
	cmd.Flags().BoolVar(&remove, "remove", false, "remove the device's tag")
	return cmd
}

const deviceStatusLong = `Set a device's availability, as facility staff see it: available (clean
and ready), in_use, soiled (off a patient, to be cleaned), in_maintenance or
out_of_service. Devices set in_use and soiled themselves by their reports;
decommissioning is "device delete"'s.

The server allows a change only in the lifecycle's order and refuses any
other with "failed precondition" (exit code 6), saying what the device can
become. Back from out_of_service is only through in_maintenance.

The device is named by its id, its resource name, or the EPC of its RFID tag
as tags/EPC. --reason is recorded in the audit log. With -o json the output
is the device's DeviceLocation.`

func (c *cli) deviceStatusCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "status ID|tags/EPC AVAILABILITY [--reason R]",
		Short: "Set a device's availability: available, in_use, soiled, in_maintenance, out_of_service",
		Long:  deviceStatusLong,
		Example: `  medfleetctl device status pump-0001 soiled
  medfleetctl device status pump-0001 out_of_service --reason "cracked housing"
  medfleetctl device status tags/E28011700000020F1A2B3C4D available`,
		Args: exactArgs(2, "a device id or tags/EPC, and an availability"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseDeviceRef(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			a, err := parseAvailability(args[1])
			if err != nil {
				return usageErrorf(cmd, "%savailability: %v", subPath(cmd), err)
			}
			return c.setAvailability(cmd, ref, a, reason)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why, for the audit log")
	return cmd
}

func (c *cli) deviceCleanCommand() *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "clean ID|tags/EPC",
		Short: "Mark a cleaned device available (device status ID available)",
		Long: `Mark a device available again once it has been cleaned: "device status ID
available" with the reason "cleaned", unless --reason says otherwise.`,
		Example: `  medfleetctl device clean pump-0001
  medfleetctl device clean tags/E28011700000020F1A2B3C4D`,
		Args: exactArgs(1, "one device id or tags/EPC"),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := parseDeviceRef(args[0])
			if err != nil {
				return usageError{cmd: cmd.CommandPath(), err: err}
			}
			return c.setAvailability(cmd, ref, medfleetv1.Availability_AVAILABILITY_AVAILABLE, reason)
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "cleaned", "why, for the audit log")
	return cmd
}

// setAvailability sends SetAvailability and says what the device is now.
func (c *cli) setAvailability(cmd *cobra.Command, ref string, a medfleetv1.Availability, reason string) error {
	req := &medfleetv1.SetAvailabilityRequest{Device: ref, Availability: a, Reason: reason}
	return c.withLocationClient(cmd.Context(), func(client medfleetv1.LocationServiceClient) error {
		rctx, cancel := c.rpcContext(cmd.Context())
		defer cancel()
		l, err := client.SetAvailability(rctx, req)
		if err != nil {
			return err
		}
		if c.flags.output == "json" {
			return writeJSON(c.stdout, l)
		}
		_, err = fmt.Fprintf(c.stdout, "%s is %s\n", cell(deviceID(l.GetDevice())), availabilityWord(l.GetAvailability()))
		return err
	})
}

// label is one key=value of a --label flag.
type label struct{ key, value string }

// labelsFlag collects repeated --label key=value flags in the order given.
type labelsFlag []label

func (f *labelsFlag) String() string {
	s := make([]string, len(*f))
	for i, l := range *f {
		s[i] = l.key + "=" + l.value
	}
	return strings.Join(s, ",")
}

// Set parses one key=value. pflag reports its error as
// `invalid argument "foo" for "--label" flag: ...`, naming the flag.
func (f *labelsFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want key=value")
	}
	if k == "" {
		return errors.New("want key=value, key is empty")
	}
	*f = append(*f, label{key: k, value: v})
	return nil
}

func (f *labelsFlag) Type() string { return "key=value" }

// set returns the labels as a map, refusing a key given twice.
func (f labelsFlag) set() (map[string]string, error) {
	if len(f) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(f))
	for _, l := range f {
		if _, dup := m[l.key]; dup {
			return nil, fmt.Errorf("--label: key %q given twice", l.key)
		}
		m[l.key] = l.value
	}
	return m, nil
}

// newRequestID returns a random (version 4) UUID.
func newRequestID() string {
	var b [16]byte
	rand.Read(b[:]) // never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}
