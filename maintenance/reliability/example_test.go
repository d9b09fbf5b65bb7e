package reliability_test

import (
	"fmt"

	"github.com/medfleet/medfleet/maintenance/reliability"
)

// Twenty units on test: ten failed, ten were still running at 500 hours
// (NIST/SEMATECH e-Handbook, 8.4.1.3).
func ExampleFitWeibull() {
	var obs []reliability.Observation
	for _, t := range []float64{54, 187, 216, 240, 244, 335, 361, 373, 375, 386} {
		obs = append(obs, reliability.Observation{Time: t, Failed: true})
	}
	for range 10 {
		obs = append(obs, reliability.Observation{Time: 500})
	}
	fit, err := reliability.FitWeibull(obs)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("beta %.4f (90%% %.2f to %.2f)\n", fit.Beta, fit.BetaBounds.Lower, fit.BetaBounds.Upper)
	fmt.Printf("eta %.1f hours, B10 %.1f hours, mean life %.1f hours\n", fit.Eta, fit.BLife(0.10), fit.MeanLife())

	a, err := reliability.AssessInterval(fit, 100, 0.90)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("replace every 100 hours: %s, %.1f%% fail first; 90%% reliability lasts %.0f hours\n",
		a.Verdict, 100*a.FailureFraction, a.RecommendedInterval)
	// Output:
	// beta 1.7208 (90% 1.06 to 2.78)
	// eta 606.5 hours, B10 164.0 hours, mean life 540.7 hours
	// replace every 100 hours: adequate, 4.4% fail first; 90% reliability lasts 164 hours
}
