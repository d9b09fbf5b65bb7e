package udi_test

import (
	"fmt"
	"log"

	"github.com/medfleet/medfleet/inventory/udi"
)

// A GS1 DataMatrix on an infusion pump, as a scanner with symbology
// identifiers on sends it: "]d2", then the element strings, a GS after the
// lot.
func ExampleParse() {
	u, err := udi.Parse("]d20151022222233336111412311715070710A213B1\x1d211234")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.HRF())
	fmt.Println("DI:     ", u.DI)
	fmt.Println("lot:    ", u.Lot)
	fmt.Println("serial: ", u.Serial)
	fmt.Println("made:   ", u.ManufactureDate)
	fmt.Println("expires:", u.ExpiryDate)
	// Output:
	// (01)51022222233336(11)141231(17)150707(10)A213B1(21)1234
	// DI:      51022222233336
	// lot:     A213B1
	// serial:  1234
	// made:    2014-12-31
	// expires: 2015-07-07
}

// A label whose expiry gives no day expires at the end of its month.
func ExampleDate_Time() {
	u, err := udi.Parse("(01)51022222233336(17)250200")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(u.ExpiryDate, u.ExpiryDate.Time().Format("2006-01-02"))
	// Output:
	// 2025-02 2025-02-28
}

func ExampleCheckGTIN() {
	fmt.Println(udi.CheckGTIN("51022222233336"))
	fmt.Println(udi.CheckGTIN("51022222233335"))
	// Output:
	// <nil>
	// udi: (01) "51022222233335": check digit 5, want 6
}
