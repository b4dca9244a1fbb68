package store_test

import (
	"context"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// adviceDay is the origin of the advice tests' forecasts.
var adviceDay = obsqra.DateOf(marketDay)

// forecast returns a market-wide forecast to store, every field set, told
// apart by n.
func forecast(kind obsqra.PredictionKind, protocolID int64, horizon int, origin obsqra.Date, n int) *obsqra.Prediction {
	f := float64(n)
	return &obsqra.Prediction{
		Kind: kind, ProtocolID: protocolID, HorizonDays: horizon,
		Origin: origin, Target: origin + obsqra.Date(horizon),
		Point: 500.25 + f, Lower80: 400.1, Upper80: 600.125, Lower95: -350.7, Upper95: 650.0625 + f,
		Confidence: 0.8125, Tolerance: 1e-9, Last: 480.3 + f,
		Model: "median7", ModelVersion: "forecast-v1", InputsDigest: fmt.Sprintf("%064x", n),
		WindowStart: origin - 29, WindowEnd: origin,
	}
}

// suggestion returns a rebalance suggestion for userID to store, told apart
// by n.
func suggestion(userID int64, origin obsqra.Date, n int) *obsqra.Prediction {
	p := forecast(obsqra.PredictionRebalanceSuggestion, 0, 30, origin, n)
	p.UserID = userID
	// Spaces and key order are kept: the details are stored byte for byte.
	p.Details = obsqra.JSONObject(fmt.Sprintf(`{"z": %d, "plan": {"weights": [{"protocolId": 1, "weightBps": 10000}]}, "s": "é"}`, n))
	return p
}

// insertPrediction stores p, which must be valid, and returns it.
func insertPrediction(t *testing.T, tx *store.Tx, p *obsqra.Prediction) *obsqra.Prediction {
	t.Helper()
	if err := tx.InsertPrediction(context.Background(), p); err != nil || p.ID == 0 {
		t.Fatalf("InsertPrediction(%s) = %v, id %d", p.Kind, err, p.ID)
	}
	return p
}

// scorePrediction records an outcome of p, which must be new, in a unit of
// work whose clock reads now, and sets it on p.
func scorePrediction(t *testing.T, tx *store.Tx, now time.Time, p *obsqra.Prediction, actual float64) {
	t.Helper()
	errValue := actual - p.Point
	if ok, err := tx.InsertPredictionOutcome(context.Background(), p.ID, actual, errValue); err != nil || !ok {
		t.Fatalf("InsertPredictionOutcome(%d) = %v, %v, want true", p.ID, ok, err)
	}
	at := stampUTC(now)
	p.Actual, p.Error, p.ScoredAt = &actual, &errValue, &at
}

// appendDecision appends a decision told apart by n and returns its id.
func appendDecision(t *testing.T, tx *store.Tx, n int) int64 {
	t.Helper()
	d := decision(n)
	if err := tx.AppendDecision(context.Background(), d, store.TestHash); err != nil {
		t.Fatalf("AppendDecision = %v", err)
	}
	return d.ID
}

func predictionIDs(ps []obsqra.Prediction) []int64 {
	ids := make([]int64, len(ps))
	for i, p := range ps {
		ids[i] = p.ID
	}
	return ids
}

func idsOf(ps ...*obsqra.Prediction) []int64 {
	out := make([]int64, len(ps))
	for i, p := range ps {
		out[i] = p.ID
	}
	return out
}

func TestPredictionRoundTrip(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "ada@example.com")
		vesu := seededIDs(t, db)["vesu"]
		var f, s *obsqra.Prediction
		inTx(t, db, func(tx *store.Tx) {
			f = forecast(obsqra.PredictionYieldForecast, vesu, 7, adviceDay, 1)
			f.Moved = new(bool)
			*f.Moved = true
			insertPrediction(t, tx, f)
			s = suggestion(u.ID, adviceDay, 2)
			s.DecisionID = appendDecision(t, tx, 2)
			insertPrediction(t, tx, s)
		})
		for _, p := range []*obsqra.Prediction{f, s} {
			if p.CreatedAt != stampUTC(testTime) {
				t.Errorf("InsertPrediction stamped %v, want %v", p.CreatedAt, stampUTC(testTime))
			}
			if got, err := db.Prediction(ctx, p.ID); err != nil || !reflect.DeepEqual(got, p) {
				t.Errorf("Prediction(%d) = %+v, %v, want %+v", p.ID, got, err, p)
			}
		}
		if f.Details != nil || f.Actual != nil || f.Error != nil || f.ScoredAt != nil {
			t.Errorf("unscored forecast read back with details or an outcome: %+v", f)
		}
		// moved reads back as written: true, false, and NULL (nil).
		movedOf := func(id int64) string {
			t.Helper()
			got, err := db.Prediction(ctx, id)
			if err != nil {
				t.Fatalf("Prediction(%d) = %v", id, err)
			}
			if got.Moved == nil {
				return "NULL"
			}
			return fmt.Sprint(*got.Moved)
		}
		if got := movedOf(f.ID); got != "true" {
			t.Errorf("Prediction(%d).Moved = %s, want true", f.ID, got)
		}
		if got := movedOf(s.ID); got != "NULL" {
			t.Errorf("Prediction(%d).Moved = %s, want NULL", s.ID, got)
		}

		// The outcome is added once, at the clock of its unit of work.
		scoredAt := testTime.Add(7 * 24 * time.Hour)
		db.Now = fixedClock(scoredAt)
		inTx(t, db, func(tx *store.Tx) {
			scorePrediction(t, tx, scoredAt, f, 512.5)
			if ok, err := tx.InsertPredictionOutcome(ctx, f.ID, 1, 2); err != nil || ok {
				t.Errorf("InsertPredictionOutcome(scored already) = %v, %v, want false", ok, err)
			}
		})
		if *f.Error != 512.5-501.25 {
			t.Fatalf("error = %v", *f.Error)
		}
		for _, p := range []*obsqra.Prediction{f, s} {
			if got, err := db.Prediction(ctx, p.ID); err != nil || !reflect.DeepEqual(got, p) {
				t.Errorf("after scoring, Prediction(%d) = %+v, %v, want %+v", p.ID, got, err, p)
			}
		}
		_, err := db.Prediction(ctx, s.ID+1)
		wantCode(t, "Prediction(unknown)", err, obsqra.ENOTFOUND)
		// And false.
		still := forecast(obsqra.PredictionYieldForecast, vesu, 7, adviceDay, 4)
		still.Moved = new(bool)
		inTx(t, db, func(tx *store.Tx) { insertPrediction(t, tx, still) })
		if got := movedOf(still.ID); got != "false" {
			t.Errorf("Prediction(%d).Moved = %s, want false", still.ID, got)
		}

		// The database refuses what validation should have caught.
		for name, bad := range map[string]func(p *obsqra.Prediction){
			"suggestion with a protocol": func(p *obsqra.Prediction) { p.ProtocolID = vesu },
			"suggestion without a user":  func(p *obsqra.Prediction) { p.UserID = 0 },
			"forecast without protocol": func(p *obsqra.Prediction) {
				p.Kind = obsqra.PredictionRiskForecast
			},
			"unknown kind":      func(p *obsqra.Prediction) { p.Kind = "GUESS" },
			"horizon 0":         func(p *obsqra.Prediction) { p.HorizonDays = 0 },
			"horizon 366":       func(p *obsqra.Prediction) { p.HorizonDays = 366 },
			"details an array":  func(p *obsqra.Prediction) { p.Details = obsqra.JSONObject(`[1]`) },
			"details not JSON":  func(p *obsqra.Prediction) { p.Details = obsqra.JSONObject(`{"a":`) },
			"unknown user":      func(p *obsqra.Prediction) { p.UserID = 1 << 40 },
			"unknown decision":  func(p *obsqra.Prediction) { p.DecisionID = 1 << 40 },
			"valid (a control)": nil,
		} {
			p := suggestion(u.ID, adviceDay, 3)
			want := "" // no error
			if bad != nil {
				bad(p)
				want = obsqra.EINTERNAL
			}
			err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.InsertPrediction(ctx, p) })
			if obsqra.ErrorCode(err) != want {
				t.Errorf("InsertPrediction(%s) = %v, want code %q", name, err, want)
			}
		}
		err = db.WithTx(ctx, func(tx *store.Tx) error {
			_, err := tx.InsertPredictionOutcome(ctx, 1<<40, 1, 1)
			return err
		})
		wantCode(t, "InsertPredictionOutcome(unknown prediction)", err, obsqra.EINTERNAL)
	})
}

func TestPredictionsQuery(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u1, u2 := createUser(t, db, "one@example.com"), createUser(t, db, "two@example.com")
		pids := seededIDs(t, db)
		a, b := pids["nostra"], pids["ekubo"]
		var yieldA, yieldB, riskA, sug1, sug2, ownA, yieldA2 *obsqra.Prediction
		inTx(t, db, func(tx *store.Tx) {
			yieldA = insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, a, 7, adviceDay, 1))
			yieldB = insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, b, 7, adviceDay, 2))
			sug1 = insertPrediction(t, tx, suggestion(u1.ID, adviceDay, 3))
			riskA = insertPrediction(t, tx, forecast(obsqra.PredictionRiskForecast, a, 30, adviceDay, 4))
			sug2 = insertPrediction(t, tx, suggestion(u2.ID, adviceDay, 5))
			// A forecast made for one user only is theirs to see.
			own := forecast(obsqra.PredictionYieldForecast, a, 7, adviceDay, 6)
			own.UserID = u1.ID
			ownA = insertPrediction(t, tx, own)
			yieldA2 = insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, a, 30, adviceDay+1, 7))
			scorePrediction(t, tx, testTime, yieldA, 499)
		})
		all := map[int64]*obsqra.Prediction{}
		for _, p := range []*obsqra.Prediction{yieldA, yieldB, riskA, sug1, sug2, ownA, yieldA2} {
			all[p.ID] = p
		}

		for _, tc := range []struct {
			name string
			q    store.PredictionQuery
			want []int64
		}{
			{"anonymous: market-wide only", store.PredictionQuery{}, idsOf(yieldA2, riskA, yieldB, yieldA)},
			{"user one: and their own", store.PredictionQuery{ViewerID: u1.ID}, idsOf(yieldA2, ownA, riskA, sug1, yieldB, yieldA)},
			{"user two: and their own", store.PredictionQuery{ViewerID: u2.ID}, idsOf(yieldA2, sug2, riskA, yieldB, yieldA)},
			{"suggestions of user one", store.PredictionQuery{Kind: obsqra.PredictionRebalanceSuggestion, ViewerID: u1.ID}, idsOf(sug1)},
			{"suggestions, anonymous", store.PredictionQuery{Kind: obsqra.PredictionRebalanceSuggestion}, nil},
			{"yield of a, user one", store.PredictionQuery{Kind: obsqra.PredictionYieldForecast, ProtocolID: a, ViewerID: u1.ID}, idsOf(yieldA2, ownA, yieldA)},
			{"protocol b", store.PredictionQuery{ProtocolID: b, ViewerID: u2.ID}, idsOf(yieldB)},
			{"after riskA", store.PredictionQuery{ViewerID: u1.ID, AfterID: riskA.ID}, idsOf(sug1, yieldB, yieldA)},
			{"after the first", store.PredictionQuery{AfterID: yieldA.ID}, nil},
		} {
			tc.q.Limit = 100
			before := db.Statements()
			got, err := db.Predictions(ctx, tc.q)
			if ran := db.Statements() - before; err != nil || !slices.Equal(predictionIDs(got), tc.want) || ran != 1 {
				t.Errorf("Predictions(%s) = %v, %v in %d statements, want %v in 1", tc.name, predictionIDs(got), err, ran, tc.want)
			}
			for _, p := range got {
				if !reflect.DeepEqual(&p, all[p.ID]) {
					t.Errorf("Predictions(%s) has %+v, want %+v", tc.name, p, all[p.ID])
				}
			}
		}

		// Keyset paging: each page asks for first+1 rows and continues
		// after the last one it keeps.
		want := idsOf(yieldA2, ownA, riskA, sug1, yieldB, yieldA)
		for _, first := range []int{1, 2, 3, 5, 6, 10} {
			var walked []int64
			q := store.PredictionQuery{ViewerID: u1.ID}
			for range 20 {
				q.Limit = first + 1
				page, err := db.Predictions(ctx, q)
				if err != nil {
					t.Fatal(err)
				}
				if len(page) <= first {
					walked = append(walked, predictionIDs(page)...)
					break
				}
				walked = append(walked, predictionIDs(page[:first])...)
				q.AfterID = page[first-1].ID
			}
			if !slices.Equal(walked, want) {
				t.Errorf("walk by %d = %v, want %v", first, walked, want)
			}
		}
		for _, limit := range []int{0, -1} {
			_, err := db.Predictions(ctx, store.PredictionQuery{Limit: limit})
			wantCode(t, fmt.Sprintf("Predictions(limit %d)", limit), err, obsqra.EINVALID)
		}
	})
}

func TestLatestPredictions(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "ada@example.com")
		pids := seededIDs(t, db)
		a, b, c := pids["nostra"], pids["zklend"], pids["vesu"]
		var newestA, newestB *obsqra.Prediction
		inTx(t, db, func(tx *store.Tx) {
			insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, a, 7, adviceDay+5, 1))
			newestB = insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, b, 7, adviceDay, 2))
			// The newest is the highest id, whatever its origin.
			newestA = insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, a, 7, adviceDay, 3))
			// Newer, but of another horizon, kind or for one user only.
			insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, a, 30, adviceDay, 4))
			insertPrediction(t, tx, forecast(obsqra.PredictionRiskForecast, a, 7, adviceDay, 5))
			insertPrediction(t, tx, forecast(obsqra.PredictionRiskForecast, c, 7, adviceDay, 6))
			own := forecast(obsqra.PredictionYieldForecast, a, 7, adviceDay, 7)
			own.UserID = u.ID
			insertPrediction(t, tx, own)
			insertPrediction(t, tx, suggestion(u.ID, adviceDay, 8))
			scorePrediction(t, tx, testTime, newestB, 3)
		})
		want := map[int64]obsqra.Prediction{a: *newestA, b: *newestB}
		before := db.Statements()
		got, err := db.LatestPredictions(ctx, obsqra.PredictionYieldForecast, 7, []int64{c, b, a, 1 << 40})
		if ran := db.Statements() - before; err != nil || !reflect.DeepEqual(got, want) || ran != 1 {
			t.Errorf("LatestPredictions = %+v, %v in %d statements, want %+v in 1", got, err, ran, want)
		}
		inTx(t, db, func(tx *store.Tx) {
			got, err := tx.LatestPredictions(ctx, obsqra.PredictionYieldForecast, 7, []int64{a, b, c})
			if err != nil || !reflect.DeepEqual(got, want) {
				t.Errorf("tx.LatestPredictions = %+v, %v, want %+v", got, err, want)
			}
		})
		before = db.Statements()
		got, err = db.LatestPredictions(ctx, obsqra.PredictionYieldForecast, 7, nil)
		if ran := db.Statements() - before; err != nil || len(got) != 0 || ran != 0 {
			t.Errorf("LatestPredictions(no protocols) = %+v, %v in %d statements, want none in 0", got, err, ran)
		}
		got, err = db.LatestPredictions(ctx, obsqra.PredictionYieldForecast, 14, []int64{a, b, c})
		if err != nil || len(got) != 0 {
			t.Errorf("LatestPredictions(horizon 14) = %+v, %v, want none", got, err)
		}
	})
}

func TestLatestSuggestion(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		u1, u2 := createUser(t, db, "one@example.com"), createUser(t, db, "two@example.com")
		_, _, err := db.LatestSuggestion(ctx, u1.ID)
		wantCode(t, "LatestSuggestion(no suggestion)", err, obsqra.ENOTFOUND)

		var old1, new1, only2 *obsqra.Prediction
		inTx(t, db, func(tx *store.Tx) {
			old1 = insertPrediction(t, tx, suggestion(u1.ID, adviceDay, 1))
			new1 = insertPrediction(t, tx, suggestion(u1.ID, adviceDay-1, 2))
			only2 = insertPrediction(t, tx, suggestion(u2.ID, adviceDay, 3))
			// A forecast for the user is not a suggestion.
			own := forecast(obsqra.PredictionYieldForecast, 1, 7, adviceDay, 4)
			own.UserID = u1.ID
			insertPrediction(t, tx, own)
		})
		check := func(when string, userID int64, want *obsqra.Prediction, wantFollowed bool) {
			t.Helper()
			before := db.Statements()
			got, followed, err := db.LatestSuggestion(ctx, userID)
			if ran := db.Statements() - before; err != nil || !reflect.DeepEqual(got, want) || followed != wantFollowed || ran != 1 {
				t.Errorf("%s: LatestSuggestion(%d) = %+v, %v, %v in %d statements, want %+v, %v in 1",
					when, userID, got, followed, err, ran, want, wantFollowed)
			}
			inTx(t, db, func(tx *store.Tx) {
				got, followed, err := tx.LatestSuggestion(ctx, userID)
				if err != nil || !reflect.DeepEqual(got, want) || followed != wantFollowed {
					t.Errorf("%s: tx.LatestSuggestion(%d) = %+v, %v, %v, want %+v, %v", when, userID, got, followed, err, want, wantFollowed)
				}
			})
		}
		check("none followed", u1.ID, new1, false)
		check("none followed", u2.ID, only2, false)
		follow := func(userID int64, s *obsqra.Prediction) {
			t.Helper()
			inTx(t, db, func(tx *store.Tx) {
				a := &obsqra.Allocation{UserID: userID, Weights: []obsqra.Weight{{ProtocolID: 1, WeightBps: 10000}},
					Reason: obsqra.ReasonUserInitiated, SuggestionID: s.ID}
				if err := tx.InsertAllocation(ctx, a); err != nil {
					t.Fatalf("InsertAllocation = %v", err)
				}
			})
		}
		follow(u1.ID, old1)
		check("an older one followed", u1.ID, new1, false)
		follow(u1.ID, new1)
		check("the newest followed", u1.ID, new1, true)
		check("another user's followed", u2.ID, only2, false)
	})
}

func TestDuePredictionsAndAccuracy(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		u := createUser(t, db, "ada@example.com")
		a := seededIDs(t, db)["jediswap"]
		// Targets adviceDay+1 … +5 for 7-day yield forecasts, in id order
		// d0 … d4, stored out of target order; one other horizon, one risk
		// forecast and one suggestion besides.
		var d []*obsqra.Prediction
		var h30, risk, sug *obsqra.Prediction
		inTx(t, db, func(tx *store.Tx) {
			for i, target := range []int{3, 1, 5, 2, 4} {
				d = append(d, insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, a, 7, adviceDay+obsqra.Date(target-7), i)))
			}
			h30 = insertPrediction(t, tx, forecast(obsqra.PredictionYieldForecast, a, 30, adviceDay+obsqra.Date(2-30), 10))
			risk = insertPrediction(t, tx, forecast(obsqra.PredictionRiskForecast, a, 7, adviceDay+obsqra.Date(2-7), 11))
			s := suggestion(u.ID, adviceDay+obsqra.Date(3-30), 12)
			sug = insertPrediction(t, tx, s)
		})
		due := func(before obsqra.Date, afterID int64, limit int) []int64 {
			t.Helper()
			got, err := db.DuePredictions(ctx, 0, before, afterID, limit)
			if err != nil {
				t.Fatalf("DuePredictions(%s, %d, %d) = %v", before, afterID, limit, err)
			}
			for _, p := range got {
				if p.Actual != nil || p.Target >= before {
					t.Errorf("DuePredictions(%s) has %+v: scored, or not due", before, p)
				}
			}
			return predictionIDs(got)
		}
		day := func(n int) obsqra.Date { return adviceDay + obsqra.Date(n) }
		for _, tc := range []struct {
			name    string
			before  obsqra.Date
			afterID int64
			limit   int
			want    []int64
		}{
			{"none due", day(1), 0, 100, nil},
			{"target before, not on", day(3), 0, 100, idsOf(d[1], d[3], h30, risk)},
			{"every one", day(6), 0, 100, idsOf(d[0], d[1], d[2], d[3], d[4], h30, risk, sug)},
			{"a batch", day(6), 0, 3, idsOf(d[0], d[1], d[2])},
			{"the next batch", day(6), d[2].ID, 3, idsOf(d[3], d[4], h30)},
		} {
			if got := due(tc.before, tc.afterID, tc.limit); !slices.Equal(got, tc.want) {
				t.Errorf("DuePredictions(%s) = %v, want %v", tc.name, got, tc.want)
			}
		}
		// The lower bound leaves out targets before it.
		if got, err := db.DuePredictions(ctx, day(3), day(6), 0, 100); err != nil || !slices.Equal(predictionIDs(got), idsOf(d[0], d[2], d[4], sug)) {
			t.Errorf("DuePredictions(from day 3) = %v, %v, want %v", predictionIDs(got), err, idsOf(d[0], d[2], d[4], sug))
		}
		_, err := db.DuePredictions(ctx, 0, day(6), 0, 0)
		wantCode(t, "DuePredictions(limit 0)", err, obsqra.EINVALID)

		db.Now = fixedClock(testTime)
		inTx(t, db, func(tx *store.Tx) {
			for i, p := range []*obsqra.Prediction{d[0], d[1], d[2], d[4], h30, risk, sug} {
				scorePrediction(t, tx, testTime, p, float64(490+i))
			}
			// A second outcome writes nothing, in the same unit of work too.
			if ok, err := tx.InsertPredictionOutcome(ctx, d[0].ID, 0, 0); err != nil || ok {
				t.Errorf("InsertPredictionOutcome(scored already) = %v, %v, want false", ok, err)
			}
		})
		if got, want := due(day(6), 0, 100), idsOf(d[3]); !slices.Equal(got, want) {
			t.Errorf("DuePredictions after scoring = %v, want %v", got, want)
		}
		if got, err := db.Prediction(ctx, d[0].ID); err != nil || *got.Actual != 490 || *got.Error != 490-d[0].Point {
			t.Errorf("Prediction(%d) after a second outcome = %+v, %v, want the first", d[0].ID, got, err)
		}

		other := createUser(t, db, "bob@example.com")
		for _, tc := range []struct {
			name     string
			kind     obsqra.PredictionKind
			horizon  int
			from, to obsqra.Date
			user     int64
			want     []*obsqra.Prediction
		}{
			{"all 7-day yield", obsqra.PredictionYieldForecast, 7, day(0), day(10), 0, []*obsqra.Prediction{d[0], d[1], d[2], d[4]}},
			{"bounds inclusive", obsqra.PredictionYieldForecast, 7, day(3), day(4), 0, []*obsqra.Prediction{d[0], d[4]}},
			{"one day, unscored", obsqra.PredictionYieldForecast, 7, day(2), day(2), 0, nil},
			{"30-day", obsqra.PredictionYieldForecast, 30, day(2), day(2), 0, []*obsqra.Prediction{h30}},
			{"risk", obsqra.PredictionRiskForecast, 7, day(0), day(10), 0, []*obsqra.Prediction{risk}},
			{"the user's suggestions", obsqra.PredictionRebalanceSuggestion, 30, day(0), day(10), u.ID, []*obsqra.Prediction{sug}},
			{"not another user's", obsqra.PredictionRebalanceSuggestion, 30, day(0), day(10), other.ID, nil},
			{"not the market's", obsqra.PredictionRebalanceSuggestion, 30, day(0), day(10), 0, nil},
			{"empty range", obsqra.PredictionYieldForecast, 7, day(4), day(3), 0, nil},
		} {
			got, err := db.PredictionAccuracy(ctx, store.AccuracyQuery{Kind: tc.kind, HorizonDays: tc.horizon,
				TargetFrom: tc.from, TargetTo: tc.to, UserID: tc.user, Bins: 10})
			if want := accuracyOf(tc.want, 10); err != nil || !sameAccuracy(got, want) {
				t.Errorf("PredictionAccuracy(%s) = %+v, %v, want %+v", tc.name, got, err, want)
			}
		}

		// Confidences land in their bins; 1 in the last.
		var binned []*obsqra.Prediction
		inTx(t, db, func(tx *store.Tx) {
			for i, c := range []float64{0, 0.1, 0.55, 0.999, 1, 0.3} {
				p := forecast(obsqra.PredictionYieldForecast, a, 3, adviceDay-10, 20+i)
				p.Confidence, p.Tolerance = c, 2
				binned = append(binned, insertPrediction(t, tx, p))
				scorePrediction(t, tx, testTime, binned[i], p.Point+float64(i)-2)
			}
		})
		got, err := db.PredictionAccuracy(ctx, store.AccuracyQuery{Kind: obsqra.PredictionYieldForecast, HorizonDays: 3,
			TargetFrom: day(-20), TargetTo: day(0), Bins: 10})
		if want := accuracyOf(binned, 10); err != nil || !sameAccuracy(got, want) || len(got) != 5 {
			t.Errorf("PredictionAccuracy(binned) = %+v, %v, want %+v", got, err, want)
		}
		if _, err := db.PredictionAccuracy(ctx, store.AccuracyQuery{Bins: 0}); obsqra.ErrorCode(err) != obsqra.EINVALID {
			t.Errorf("PredictionAccuracy(0 bins) = %v, want EINVALID", err)
		}
	})
}

// TestPredictionAccuracyMoving: the moving sums count only the scored
// predictions recorded with moved true, a NULL (a prediction made before
// moved was recorded) as not moving, and of those the actual values inside
// each interval.
func TestPredictionAccuracyMoving(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		a := seededIDs(t, db)["vesu"]
		yes, no := true, false
		db.Now = fixedClock(testTime)
		var ps []*obsqra.Prediction
		inTx(t, db, func(tx *store.Tx) {
			// The intervals are [400.1, 600.125] and [-350.7, 650.0625+n]:
			// 500 is inside both, 620 inside the 95 % one only, 700 in
			// neither.
			for i, c := range []struct {
				moved  *bool
				actual float64
			}{
				{&yes, 500}, {&yes, 620}, {&yes, 700}, // moving: 3, in80 1, in95 2
				{&no, 500}, {&no, 700},
				{nil, 500}, {nil, 620},
			} {
				p := forecast(obsqra.PredictionYieldForecast, a, 5, adviceDay-10, 30+i)
				p.Moved = c.moved
				ps = append(ps, insertPrediction(t, tx, p))
				scorePrediction(t, tx, testTime, p, c.actual)
			}
			// Unscored, and of another horizon: neither counts.
			p := forecast(obsqra.PredictionYieldForecast, a, 5, adviceDay-10, 40)
			p.Moved = &yes
			insertPrediction(t, tx, p)
			p = forecast(obsqra.PredictionYieldForecast, a, 6, adviceDay-11, 41)
			p.Moved = &yes
			insertPrediction(t, tx, p)
			scorePrediction(t, tx, testTime, p, 500)
		})
		got, err := db.PredictionAccuracy(ctx, store.AccuracyQuery{Kind: obsqra.PredictionYieldForecast, HorizonDays: 5,
			TargetFrom: adviceDay - 10, TargetTo: adviceDay, Bins: 10})
		if err != nil || len(got) != 1 {
			t.Fatalf("PredictionAccuracy(moving) = %+v, %v, want one bin", got, err)
		}
		b := got[0]
		if b.Bin != 8 || b.Count != 7 || b.In80 != 3 || b.In95 != 5 || b.Moving != 3 || b.MovingIn80 != 1 || b.MovingIn95 != 2 {
			t.Errorf("PredictionAccuracy(moving) = %+v, want bin 8: count 7, in80 3, in95 5, moving 3, moving in80 1, moving in95 2", b)
		}
		if want := accuracyOf(ps, 10); !sameAccuracy(got, want) {
			t.Errorf("PredictionAccuracy(moving) = %+v, want %+v", got, want)
		}
	})
}

func TestAllocations(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		u, other := createUser(t, db, "ada@example.com"), createUser(t, db, "other@example.com")
		_, err := db.LatestAllocation(ctx, u.ID)
		wantCode(t, "LatestAllocation(none)", err, obsqra.ENOTFOUND)
		if got, err := db.AllocationsSince(ctx, u.ID, testTime); err != nil || len(got) != 0 {
			t.Errorf("AllocationsSince(no allocation) = %+v, %v, want none", got, err)
		}

		// at(i) is the clock of allocation i; 2 and 3 tie, and the higher id
		// is the newer.
		at := func(i int) time.Time {
			clock := []time.Duration{0, time.Hour, 2 * time.Hour, 2 * time.Hour, 5 * time.Hour, 7 * time.Hour}
			return stampUTC(testTime.Add(clock[i]))
		}
		var all []*obsqra.Allocation // oldest first
		for i := range 6 {
			db.Now = fixedClock(at(i))
			inTx(t, db, func(tx *store.Tx) {
				a := &obsqra.Allocation{UserID: u.ID, Reason: obsqra.ReasonAutoRebalance,
					// Kept in the order given, whatever it is.
					Weights: []obsqra.Weight{{ProtocolID: 3, WeightBps: 4000 + i}, {ProtocolID: 1, WeightBps: 6000 - i}}}
				if i == 1 {
					s := insertPrediction(t, tx, suggestion(u.ID, adviceDay, 1))
					a.Reason, a.SuggestionID, a.DecisionID = obsqra.ReasonOptimization, s.ID, appendDecision(t, tx, 1)
					a.TxHash = mustFelt(t, "0x49D36570D4E46F48E99674BD3FCC84644DDD6B96F7C741B1562B82F9E004DC7")
					a.PortfolioValueUsd = decimal("123456789012345678901234567890.123456789012345678")
				}
				if i == 2 {
					a.Reason, a.PortfolioValueUsd = obsqra.ReasonUserInitiated, decimal("0")
				}
				if err := tx.InsertAllocation(ctx, a); err != nil || a.ID == 0 || a.CreatedAt != at(i) {
					t.Fatalf("InsertAllocation(#%d) = %v, id %d, created %v, want %v", i, err, a.ID, a.CreatedAt, at(i))
				}
				if got, err := tx.LatestAllocation(ctx, u.ID); err != nil || !reflect.DeepEqual(got, a) {
					t.Errorf("tx.LatestAllocation after #%d = %+v, %v, want %+v", i, got, err, a)
				}
				all = append(all, a)
			})
		}
		db.Now = fixedClock(at(3))
		var others *obsqra.Allocation
		inTx(t, db, func(tx *store.Tx) {
			others = &obsqra.Allocation{UserID: other.ID, Reason: obsqra.ReasonUserInitiated,
				Weights: []obsqra.Weight{{ProtocolID: 2, WeightBps: 10000}}}
			if err := tx.InsertAllocation(ctx, others); err != nil {
				t.Fatal(err)
			}
		})
		if all[1].TxHash.String() != "0x049d36570d4e46f48e99674bd3fcc84644ddd6b96f7c741b1562b82f9e004dc7" {
			t.Errorf("TxHash = %s, want the canonical felt", all[1].TxHash)
		}
		// By transaction hash: the user's own, in one statement.
		unknown := *mustFelt(t, "0x1234")
		before := db.Statements()
		byHash, err := db.AllocationsByTxHash(ctx, u.ID, []obsqra.Felt{*all[1].TxHash, unknown})
		if err != nil || len(byHash) != 1 || !reflect.DeepEqual(byHash[*all[1].TxHash], *all[1]) || db.Statements()-before != 1 {
			t.Errorf("AllocationsByTxHash = %+v, %v in %d statements, want allocation %d only, in one", byHash, err, db.Statements()-before, all[1].ID)
		}
		if got, err := db.AllocationsByTxHash(ctx, other.ID, []obsqra.Felt{*all[1].TxHash}); err != nil || len(got) != 0 {
			t.Errorf("AllocationsByTxHash(another user) = %+v, %v, want none", got, err)
		}
		for _, a := range append(all, others) {
			if got, err := db.Allocation(ctx, a.ID); err != nil || !reflect.DeepEqual(got, a) {
				t.Errorf("Allocation(%d) = %+v, %v, want %+v", a.ID, got, err, a)
			}
		}
		_, err = db.Allocation(ctx, others.ID+1)
		wantCode(t, "Allocation(unknown)", err, obsqra.ENOTFOUND)
		if got, err := db.LatestAllocation(ctx, u.ID); err != nil || !reflect.DeepEqual(got, all[5]) {
			t.Errorf("LatestAllocation = %+v, %v, want %+v", got, err, all[5])
		}

		allocIDs := func(as []obsqra.Allocation) []int64 {
			out := make([]int64, len(as))
			for i, a := range as {
				out[i] = a.ID
			}
			return out
		}
		want := func(is ...int) []int64 {
			out := make([]int64, len(is))
			for k, i := range is {
				out[k] = all[i].ID
			}
			return out
		}

		// AllocationsSince: the one in effect at since, then the later ones.
		for _, tc := range []struct {
			name  string
			since time.Time
			want  []int64
		}{
			{"before every one", at(0).Add(-time.Microsecond), want(0, 1, 2, 3, 4, 5)},
			{"on the first", at(0), want(0, 1, 2, 3, 4, 5)},
			{"between", at(1).Add(time.Minute), want(1, 2, 3, 4, 5)},
			{"on a tie: the higher id is in effect", at(2), want(3, 4, 5)},
			{"after every one", at(5).Add(time.Hour), want(5)},
		} {
			before := db.Statements()
			got, err := db.AllocationsSince(ctx, u.ID, tc.since)
			if ran := db.Statements() - before; err != nil || !slices.Equal(allocIDs(got), tc.want) || ran != 1 {
				t.Errorf("AllocationsSince(%s) = %v, %v in %d statements, want %v in 1", tc.name, allocIDs(got), err, ran, tc.want)
			}
			for _, a := range got {
				if !reflect.DeepEqual(a, *findAllocation(all, a.ID)) {
					t.Errorf("AllocationsSince(%s) has %+v", tc.name, a)
				}
			}
		}

		// Allocations: newest first, bounded, paged after a position.
		newest := want(5, 4, 3, 2, 1, 0)
		from, to, tie := at(1), at(4), at(2)
		for _, tc := range []struct {
			name     string
			from, to *time.Time
			want     []int64
		}{
			{"all", nil, nil, newest},
			{"from", &from, nil, want(5, 4, 3, 2, 1)},
			{"to", nil, &to, want(4, 3, 2, 1, 0)},
			{"from and to", &from, &to, want(4, 3, 2, 1)},
			{"one instant, tied", &tie, &tie, want(3, 2)},
			{"empty", &to, &from, nil},
		} {
			for _, first := range []int{1, 2, 3, 10} {
				var walked []int64
				q := store.AllocationQuery{UserID: u.ID, From: tc.from, To: tc.to}
				for range 20 {
					q.Limit = first + 1
					page, err := db.Allocations(ctx, q)
					if err != nil {
						t.Fatal(err)
					}
					if len(page) <= first {
						walked = append(walked, allocIDs(page)...)
						break
					}
					walked = append(walked, allocIDs(page[:first])...)
					q.After = &obsqra.HistoryKey{At: page[first-1].CreatedAt, ID: page[first-1].ID}
				}
				if !slices.Equal(walked, tc.want) {
					t.Errorf("Allocations(%s) by %d = %v, want %v", tc.name, first, walked, tc.want)
				}
			}
		}
		if got, err := db.Allocations(ctx, store.AllocationQuery{UserID: other.ID, Limit: 10}); err != nil ||
			len(got) != 1 || !reflect.DeepEqual(got[0], *others) {
			t.Errorf("Allocations(other user) = %+v, %v, want only theirs", got, err)
		}
		_, err = db.Allocations(ctx, store.AllocationQuery{UserID: u.ID})
		wantCode(t, "Allocations(limit 0)", err, obsqra.EINVALID)

		// The database refuses what validation should have caught.
		for name, bad := range map[string]func(a *obsqra.Allocation){
			"unknown reason":     func(a *obsqra.Allocation) { a.Reason = "WHIM" },
			"nil weights":        func(a *obsqra.Allocation) { a.Weights = nil },
			"negative value":     func(a *obsqra.Allocation) { a.PortfolioValueUsd = decimal("-1") },
			"unknown suggestion": func(a *obsqra.Allocation) { a.SuggestionID = 1 << 40 },
			"unknown user":       func(a *obsqra.Allocation) { a.UserID = 1 << 40 },
			"valid (a control)":  nil,
		} {
			a := &obsqra.Allocation{UserID: u.ID, Reason: obsqra.ReasonUserInitiated, Weights: []obsqra.Weight{{ProtocolID: 1, WeightBps: 10000}}}
			wantErr := "" // no error
			if bad != nil {
				bad(a)
				wantErr = obsqra.EINTERNAL
			}
			err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.InsertAllocation(ctx, a) })
			if obsqra.ErrorCode(err) != wantErr {
				t.Errorf("InsertAllocation(%s) = %v, want code %q", name, err, wantErr)
			}
		}
	})
}

func findAllocation(all []*obsqra.Allocation, id int64) *obsqra.Allocation {
	for _, a := range all {
		if a.ID == id {
			return a
		}
	}
	return nil
}

func TestAutoRebalanceUsers(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		if got, err := db.AutoRebalanceUsers(ctx); err != nil || len(got) != 0 {
			t.Errorf("AutoRebalanceUsers() of no users = %+v, %v, want none", got, err)
		}
		var want []obsqra.User
		for i, c := range []struct{ active, auto bool }{{true, true}, {false, true}, {true, false}, {false, false}, {true, true}} {
			u := newUser(fmt.Sprintf("user%d@example.com", i))
			u.Active, u.Preferences.AutoRebalance = c.active, c.auto
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
				t.Fatal(err)
			}
			if c.active && c.auto {
				want = append(want, *u)
			}
		}
		if got, err := db.AutoRebalanceUsers(ctx); err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("AutoRebalanceUsers() = %+v, %v, want %+v", got, err, want)
		}
	})
}

// TestDailySeriesCarriesRiskScores: a daily point has the score of its
// sample, and none when that sample is not scored.
func TestDailySeriesCarriesRiskScores(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		id := seededIDs(t, db)["nostra"]
		inTx(t, db, func(tx *store.Tx) {
			record := func(m *obsqra.MetricsSample) {
				t.Helper()
				if err := tx.RecordDaily(ctx, m); err != nil {
					t.Fatal(err)
				}
			}
			scoreWith := func(m *obsqra.MetricsSample, value, tier int) {
				t.Helper()
				s := &obsqra.RiskScore{ProtocolID: id, SampleID: m.ID, ObservedAt: m.ObservedAt, Score: value,
					Inputs:        obsqra.RiskInputs{Liquidity: tier},
					ParamsVersion: 1, ModelVersion: obsqra.RiskModelVersion, ComputedAt: m.ObservedAt, DecisionID: appendDecision(t, tx, value)}
				if err := tx.InsertRiskScore(ctx, s); err != nil {
					t.Fatal(err)
				}
			}
			// Day 0: scored. Day 1: its earlier sample is scored, its last
			// (the day's point) is not. Day 2: scored with tier 0.
			m0 := sample(t, tx, id, marketDay.Add(time.Hour), 100)
			scoreWith(m0, 42, 2)
			record(m0)
			m1 := sample(t, tx, id, marketDay.Add(25*time.Hour), 110)
			scoreWith(m1, 43, 3)
			record(m1)
			record(sample(t, tx, id, marketDay.Add(26*time.Hour), 120))
			m2 := sample(t, tx, id, marketDay.Add(49*time.Hour), 130)
			scoreWith(m2, 7, 0)
			record(m2)
		})
		got, err := db.DailySeries(ctx, []int64{id}, adviceDay, adviceDay+2)
		if err != nil || len(got[id]) != 3 {
			t.Fatalf("DailySeries = %+v, %v, want 3 days", got, err)
		}
		show := func(p *int) string {
			if p == nil {
				return "nil"
			}
			return fmt.Sprint(*p)
		}
		var scores []string
		for _, p := range got[id] {
			scores = append(scores, show(p.RiskScore)+"/"+show(p.LiquidityTier))
		}
		if want := []string{"42/2", "nil/nil", "7/0"}; !slices.Equal(scores, want) {
			t.Errorf("DailySeries scores/tiers = %v, want %v", scores, want)
		}
	})
}

// TestAdviceIsAppendOnly: the database itself refuses to change or remove
// predictions, their outcomes and allocations, whatever SQL is run.
func TestAdviceIsAppendOnly(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		db.Now = fixedClock(testTime)
		u := createUser(t, db, "ada@example.com")
		var p *obsqra.Prediction
		var a *obsqra.Allocation
		inTx(t, db, func(tx *store.Tx) {
			p = insertPrediction(t, tx, suggestion(u.ID, adviceDay, 1))
			scorePrediction(t, tx, testTime, p, 3)
			a = &obsqra.Allocation{UserID: u.ID, Reason: obsqra.ReasonOptimization, SuggestionID: p.ID,
				Weights: []obsqra.Weight{{ProtocolID: 1, WeightBps: 10000}}}
			if err := tx.InsertAllocation(ctx, a); err != nil {
				t.Fatal(err)
			}
		})
		refused := func(stmt string) {
			t.Helper()
			if err := storetest.Exec(t, db, stmt); err == nil || !strings.Contains(err.Error(), "append-only") {
				t.Errorf("%s = %v, want refused as append-only", stmt, err)
			}
		}
		set := map[string]string{"predictions": "point = 0", "prediction_outcomes": "actual = 0", "allocations": "reason = 'USER_INITIATED'"}
		for _, table := range []string{"predictions", "prediction_outcomes", "allocations"} {
			refused("UPDATE " + table + " SET " + set[table])
			refused("DELETE FROM " + table + " WHERE 1 = 1")
			refused("DELETE FROM " + table) // SQLite's truncate optimisation meets the trigger too
			if db.Dialect() == store.DialectPostgres {
				refused("TRUNCATE " + table + " CASCADE")
			}
		}
		if got, err := db.Prediction(ctx, p.ID); err != nil || !reflect.DeepEqual(got, p) {
			t.Errorf("Prediction(%d) after tampering = %+v, %v, want %+v", p.ID, got, err, p)
		}
		if got, err := db.Allocation(ctx, a.ID); err != nil || !reflect.DeepEqual(got, a) {
			t.Errorf("Allocation(%d) after tampering = %+v, %v, want %+v", a.ID, got, err, a)
		}
	})
}

// accuracyOf is PredictionAccuracy computed here, from scored predictions.
func accuracyOf(ps []*obsqra.Prediction, bins int) []store.AccuracyBin {
	by := map[int]*store.AccuracyBin{}
	for _, p := range ps {
		i := min(int(p.Confidence*float64(bins)), bins-1)
		b := by[i]
		if b == nil {
			b = &store.AccuracyBin{Bin: i}
			by[i] = b
		}
		b.Count++
		b.SumConfidence += p.Confidence
		if math.Abs(*p.Actual-p.Point) <= p.Tolerance {
			b.Hits++
		}
		b.SumAbsError += math.Abs(*p.Actual - p.Point)
		b.SumAbsNaiveError += math.Abs(*p.Actual - p.Last)
		in80 := *p.Actual >= p.Lower80 && *p.Actual <= p.Upper80
		in95 := *p.Actual >= p.Lower95 && *p.Actual <= p.Upper95
		moving := p.Moved != nil && *p.Moved
		for _, c := range []struct {
			n    *int
			when bool
		}{{&b.In80, in80}, {&b.In95, in95}, {&b.Moving, moving}, {&b.MovingIn80, moving && in80}, {&b.MovingIn95, moving && in95}} {
			if c.when {
				*c.n++
			}
		}
	}
	var out []store.AccuracyBin
	for i := range bins {
		if b := by[i]; b != nil {
			out = append(out, *b)
		}
	}
	return out
}

// sameAccuracy compares accuracy bins, sums to within rounding.
func sameAccuracy(got, want []store.AccuracyBin) bool {
	if len(got) != len(want) {
		return false
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*max(1, math.Abs(b)) }
	for i := range got {
		g, w := got[i], want[i]
		if g.Bin != w.Bin || g.Count != w.Count || g.Hits != w.Hits || g.In80 != w.In80 || g.In95 != w.In95 ||
			g.Moving != w.Moving || g.MovingIn80 != w.MovingIn80 || g.MovingIn95 != w.MovingIn95 ||
			!near(g.SumConfidence, w.SumConfidence) || !near(g.SumAbsError, w.SumAbsError) || !near(g.SumAbsNaiveError, w.SumAbsNaiveError) {
			return false
		}
	}
	return true
}
