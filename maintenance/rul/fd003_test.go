package rul

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// fd003 is the C-MAPSS FD003 copy of the repository's shared data, beside
// the checkout.
var fd003 = filepath.Join("..", "..", "..", "shared", "datasets", "cmapss-fd003")

func readFD003(t *testing.T) (train, test []Unit, truth []float64) {
	t.Helper()
	open := func(name string) *os.File {
		f, err := os.Open(filepath.Join(fd003, name))
		if err != nil {
			t.Skipf("C-MAPSS FD003 not found, skipping the test on real data: %v", err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	var err error
	if train, err = ReadCMAPSS(open("train_FD003_units1-66.txt")); err != nil {
		t.Fatal(err)
	}
	if test, err = ReadCMAPSS(open("test_FD003.txt")); err != nil {
		t.Fatal(err)
	}
	if truth, err = ReadRUL(open("RUL_FD003.txt")); err != nil {
		t.Fatal(err)
	}
	if len(train) != 66 || len(test) != 100 || len(truth) != 100 {
		t.Fatalf("FD003: %d training units, %d test units, %d true values; want 66, 100, 100", len(train), len(test), len(truth))
	}
	return train, test, truth
}

// TestFD003 trains a reduced model (one booster of 150 trees instead of
// three of 400) on the real data and scores it on the official test set,
// to catch a regression in the parser, the features or the learner.
//
// This model reaches RMSE 12.5 to 13.0 and PHM08 290 to 330 with seeds 0
// to 4, as the full one does. The bounds are the target, the deep
// LSTM of 2017 (16.18, 852): seed-to-seed noise is under 1, while a
// regression that breaks a feature family or the channel selection costs
// more than 3 (without the drift feature, cross-validation was 2.2 worse;
// keeping every channel, 0.6 worse).
func TestFD003(t *testing.T) {
	if testing.Short() {
		t.Skip("trains on C-MAPSS FD003; skipped with -short")
	}
	train, test, truth := readFD003(t)
	cfg := DefaultConfig()
	cfg.Ensemble, cfg.Trees, cfg.LearningRate = 1, 150, 0.1
	start := time.Now()
	m, err := Train(t.Context(), train, cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The constant channels and the operating settings (FD003 has one
	// operating condition) carry nothing.
	for _, c := range []string{"setting1", "setting2", "setting3", "s1", "s5", "s16", "s18", "s19"} {
		if slices.Contains(m.Channels(), c) {
			t.Errorf("channel %s kept; want it dropped", c)
		}
	}
	for _, c := range []string{"s2", "s3", "s4", "s7", "s11", "s12"} {
		if !slices.Contains(m.Channels(), c) {
			t.Errorf("channel %s dropped; want it kept", c)
		}
	}
	pred := make([]float64, len(test))
	for i, u := range test {
		if pred[i], err = m.Predict(u); err != nil {
			t.Fatal(err)
		}
	}
	rmse, phm, err := Evaluate(pred, truth)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FD003, reduced model: channels %q, RMSE %.2f, PHM08 %.0f, %s", m.Channels(), rmse, phm, time.Since(start).Round(time.Millisecond))
	if rmse >= 16 || phm >= 852 {
		t.Errorf("FD003, reduced model: RMSE %.2f, PHM08 %.0f; want below 16 and 852 (the deep LSTM of 2017)", rmse, phm)
	}
}
