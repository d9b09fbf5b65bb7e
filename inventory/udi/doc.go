// Package udi parses the Unique Device Identifiers of GS1 labels (21 CFR
// 830.3): the device identifier, a GTIN, and the production identifiers
// (lot, serial number, manufacture and expiry dates) that follow it.
//
// # What it reads
//
// A UDI is a GS1 element string, in either of the forms labels and scanners
// present it. The human-readable form puts each application identifier
// (AI) in parentheses before its value:
//
//	(01)51022222233336(11)141231(17)150707(10)A213B1(21)1234
//
// There a value ends at the next "(", so a "(" inside one is written "\(",
// as the GS1 Barcode Syntax Engine does. The raw form, as a barcode
// carries it, has no parentheses (<GS> is ASCII 29, which scanners send
// for FNC1):
//
//	0151022222233336111412311715070710A213B1<GS>211234
//
// An element whose AI starts with two digits listed in the GS1 table of
// pre-defined lengths (00-04, 11-20, 31-36, 41) is exactly that long; any
// other runs to a GS or the end of the input. U+241D "␝", the visible
// symbol for GS in documents, is taken for GS.
//
// Surrounding white space is trimmed. Before the element strings may come
// a symbology identifier as scanners send it (]C1 GS1-128, ]e0 GS1
// DataBar, ]d2 GS1 DataMatrix, ]Q3 GS1 QR Code, ]J1 GS1 DotCode), then a
// GS for the leading FNC1. In the raw form a GS may also follow a
// pre-defined length element, or end the input.
//
// # What it checks
//
// Every element, the first problem reported as an *Error naming the
// element, its byte offset and what is wrong:
//
//   - (01) is present. It and the other GS1 keys (00, 02, the first 13
//     digits of 253) have the right number of digits and a valid mod-10
//     check digit.
//   - Dates (11, 12, 13, 15, 16, 17) are YYMMDD with a month 01-12 and a
//     day of that month or 00 (no day given). (7003) is YYMMDDHHMM with a
//     real day and time. The century is the one GS1 prescribes for the
//     current year: a label is at most 49 years ahead and 50 behind.
//   - Lot (10), serial (21) and the other alphanumeric values have 1 to
//     their maximum characters (20 for lot and serial) of GS1 AI encodable
//     character set 82: A-Z a-z 0-9 !"%&'()*+,-./:;<=>?_ and nothing
//     else, no space.
//   - Numeric values are digits, of the AI's length.
//   - No AI appears twice.
//   - The input is at most MaxLen (256) bytes, and so is the UDI's
//     human-readable form.
//
// The recognised AIs are 00, 01, 02, 10, 11, 12, 13, 15, 16, 17, 20, 21,
// 22, 235, 240, 241, 242, 243, 250, 251, 253, 254, 30, 37, 7003, 7004,
// 8012 and 8020; any other is refused by name, even a valid GS1 one,
// since the raw form cannot be split past an AI whose length is unknown.
// The values of those besides 01, 10, 11, 17 and 21 are kept, as given,
// in UDI.Other.
//
// # What it refuses
//
// UDIs of the other FDA issuing agencies, HIBCC (starting with "+") and
// ICCBBA (starting with "=" or "&"), and GS1 Digital Link URIs, each
// with an error that says so. It does not check GS1's rules on which AIs
// must or must not appear together (such as (02) and (37), which belong
// on logistic units and not beside an (01)).
//
// # Sources
//
// GS1 General Specifications: the AI definitions of chapter 3 (formats
// and lengths; DD=00 in dates), 7.8 (the AI lengths by their first two
// digits, figure 7.8.2-1; the pre-defined length table; the FNC1
// separator), 7.9.1 (the mod-10 check digit), 7.11 (character set 82,
// figure 7.11-1) and 7.12 (the century of a two-digit year). The GS1
// Barcode Syntax Dictionary for the formats of the recognised AIs, ISO/IEC
// 15424 for symbology identifiers.
//
// # Imports
//
// udi imports the standard library only. It must not import other Medfleet
// packages: the inventory, the CLI and the agents all parse UDIs with it.
package udi
