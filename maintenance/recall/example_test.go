package recall_test

import (
	"fmt"
	"strings"

	"github.com/medfleet/medfleet/maintenance/recall"
)

func ExampleParseCodeInfo() {
	c := recall.ParseCodeInfo("Model 8100; Serial Numbers: 12580050 through 12580099, 12580120 and 12580133 (Exp. 01/20/2030)")
	fmt.Println("models:", c.Models)
	fmt.Println("serials:", c.Serials)
	fmt.Println("contains 12580077:", c.Serials[0].Contains("12580077"))
	// Output:
	// models: [8100]
	// serials: [12580050-12580099 12580120 12580133]
	// contains 12580077: true
}

func ExampleMatchFleet() {
	recalls, err := recall.ParseOpenFDA(strings.NewReader(`{"meta": {}, "results": [{
		"product_res_number": "Z-1432-2026",
		"product_code": "FRN",
		"product_description": "BD Alaris Pump Module, Model 8100",
		"code_info": "Serial Numbers: 12580050 through 12580099"}]}`))
	if err != nil {
		fmt.Println(err)
		return
	}
	fleet := []recall.Candidate{
		{Device: "devices/pump-077", Manufacturer: "BD", Model: "BD Alaris 8100", Serial: "12580077", ProductCode: "FRN"},
		{Device: "devices/pump-200", Manufacturer: "BD", Model: "BD Alaris 8100", Serial: "12580200", ProductCode: "FRN"},
		{Device: "devices/pump-new", Manufacturer: "BD", Model: "BD Alaris 8100", ProductCode: "FRN"},
	}
	for _, m := range recall.MatchFleet(recalls[0], fleet) {
		fmt.Println(m.Device, m.Strength, strings.Join(m.Basis, "; "))
	}
	// Output:
	// devices/pump-077 strong model Alaris 8100 named in the recall; product code FRN; serial 12580077 in 12580050-12580099
	// devices/pump-new possible model Alaris 8100 named in the recall; product code FRN; serial unknown
}
