// Package recall reads FDA medical device recalls and finds the fleet
// devices they may affect.
//
// [ParseOpenFDA] reads records in openFDA's device/recall format
// (https://api.fda.gov/device/recall.json, or the download.open.fda.gov
// files): one [Recall] per product of a recall event, keyed by its
// product_res_number. [ParseCodeInfo] reads the free text the FDA publishes
// as code_info ("Model 8100; Serial Numbers: 12580050 through 12580099,
// 12580120 and 12580133") into [Codes]: models, lot and serial [Range]s,
// UDI device identifiers, and whether the recall covers all units. It is a
// tokenizer and a small state machine: a label ("Serial Numbers", "Lot #",
// "Model", "REF", "UDI-DI") says what the values after it are, until the
// next label; dates, quantities, versions and product codes are dropped.
// [ParseCodes] adds the models and device identifiers the product
// description names; ParseOpenFDA stores its result in Recall.Codes.
//
// # Matching
//
// [MatchFleet] matches one recall against the fleet, device by device:
//
//  1. The recall must name the device's model. It does when the device's
//     UDI-DI is among the recall's device identifiers; or one of the
//     model's catalogue numbers (Candidate.ModelNumbers, three characters or
//     more) appears in the recall's product description or code
//     information; or the model string's distinguishing tokens appear
//     there. Those are the words of the model string that are not words of
//     the manufacturer's name, compared without case or punctuation:
//     "Alaris" and "8100" for "BD Alaris 8100" made by BD. Tokens with
//     digits must all appear, together with one of the other tokens ("Alaris
//     8100"), or on their own when the recall lists one of at least three
//     characters as a model number ("Model 8100"); a model string without
//     digits ("ZOLL R Series") needs all its tokens. So a short number ("11"
//     of "AirSense 11") never names a model by itself, and the
//     manufacturer's or recalling firm's name never names one at all.
//  2. If the recall has a product code and the device's is known, they must
//     be equal.
//  3. Then the units. A serial in one of the serial ranges the recall lists,
//     or a lot in one of its lot ranges, is a strong match. A recall that
//     lists serials, lots or both and includes neither the device's serial
//     nor its lot does not match it, unless one of the listed attributes is
//     unknown for the device: then the match is possible ("serial
//     unknown"). A recall that says all units, or lists no units, matches
//     every device of the model as possible ("recall names the model, all
//     units"). A recall that lists numbers without saying whether they are
//     lots or serials matches strongly when the serial or lot is among them
//     and as possible otherwise.
//
// Every match carries its basis in plain words ("model Alaris 8100 named
// in the recall", "product code FRN", "serial 12580077 in
// 12580050-12580099") for the person who confirms or dismisses it: a
// possible match always needs one, and code_info is free text that no
// parser reads perfectly.
//
// recall uses only the standard library and imports nothing from Medfleet,
// so that the server and medfleetctl can both link it.
package recall
