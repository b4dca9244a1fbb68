package store

import (
	"context"
	"strconv"
	"strings"

	"github.com/obsqra/obsqra"
)

// predictionColumns are the predictions columns every prediction query
// reads, followed by its outcome's, in the order predictionScanArgs scans
// them. The queries alias predictions p and prediction_outcomes o.
var predictionColumns = columns("p.",
	"id", "kind", "protocol_id", "user_id", "horizon_days", "origin", "target",
	"point", "lower80", "upper80", "lower95", "upper95", "confidence", "tolerance", "last",
	"model", "model_version", "inputs_digest", "window_start", "window_end",
	"decision_id", "details", "created_at", "moved") + ", " + columns("o.", "actual", "error", "scored_at")

// predictionSelect reads predictions with their outcome, if any.
var predictionSelect = "SELECT " + predictionColumns +
	" FROM predictions p LEFT JOIN prediction_outcomes o ON o.prediction_id = p.id"

func predictionScanArgs(p *obsqra.Prediction) []any {
	return []any{&p.ID, &p.Kind, idScanner{&p.ProtocolID}, idScanner{&p.UserID}, &p.HorizonDays,
		dateScanner{&p.Origin}, dateScanner{&p.Target},
		&p.Point, &p.Lower80, &p.Upper80, &p.Lower95, &p.Upper95, &p.Confidence, &p.Tolerance, &p.Last,
		&p.Model, &p.ModelVersion, &p.InputsDigest, dateScanner{&p.WindowStart}, dateScanner{&p.WindowEnd},
		idScanner{&p.DecisionID}, jsonObjectScanner{&p.Details}, scanTime(&p.CreatedAt), boolScanner{&p.Moved},
		&p.Actual, &p.Error, scanNullTime(&p.ScoredAt)}
}

// InsertPrediction stores p and sets p.ID and p.CreatedAt. ProtocolID,
// UserID and DecisionID 0 are stored as NULL, and so are a nil Details and
// a nil Moved; Details is stored byte for byte. The outcome fields are not
// stored (see InsertPredictionOutcome).
// Errors: only internal ones (the caller validates).
func (tx *Tx) InsertPrediction(ctx context.Context, p *obsqra.Prediction) error {
	c := tx.conn()
	now := tx.now()
	err := c.queryRow(ctx, `
		INSERT INTO predictions (kind, protocol_id, user_id, horizon_days, origin, target,
			point, lower80, upper80, lower95, upper95, confidence, tolerance, last,
			model, model_version, inputs_digest, window_start, window_end,
			decision_id, details, created_at, moved)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		string(p.Kind), idArg(p.ProtocolID), idArg(p.UserID), p.HorizonDays, p.Origin.String(), p.Target.String(),
		p.Point, p.Lower80, p.Upper80, p.Lower95, p.Upper95, p.Confidence, p.Tolerance, p.Last,
		p.Model, p.ModelVersion, p.InputsDigest, p.WindowStart.String(), p.WindowEnd.String(),
		idArg(p.DecisionID), jsonObjectArg(p.Details), c.d.timeArg(now), boolArg(p.Moved)).Scan(&p.ID)
	if err != nil {
		return translate(err, "insert prediction", "prediction")
	}
	p.CreatedAt = now
	return nil
}

// Prediction returns the prediction with the given id, with its outcome
// when it is scored. It does not check who may see it.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) Prediction(ctx context.Context, id int64) (*obsqra.Prediction, error) {
	p := new(obsqra.Prediction)
	if err := db.conn().queryRow(ctx, predictionSelect+" WHERE p.id = ?", id).Scan(predictionScanArgs(p)...); err != nil {
		return nil, translate(err, "load prediction", "prediction")
	}
	return p, nil
}

// PredictionQuery selects a page of predictions, newest (highest id) first.
type PredictionQuery struct {
	Kind       obsqra.PredictionKind // "" for every kind
	ProtocolID int64                 // 0 for every protocol
	// ViewerID: only predictions with user_id NULL or user_id = ViewerID are returned (0: market-wide ones only).
	ViewerID int64
	AfterID  int64 // 0: from the newest; else only ids < AfterID
	Limit    int   // rows to return (callers pass first+1)
}

// Predictions returns the page of predictions q selects, with their
// outcomes, newest first, in one statement. A viewer sees the market-wide
// predictions and their own, never another user's.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) Predictions(ctx context.Context, q PredictionQuery) ([]obsqra.Prediction, error) {
	if q.Limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", q.Limit)
	}
	var conds []string
	var args []any
	if q.Kind != "" {
		conds = append(conds, "p.kind = ?")
		args = append(args, string(q.Kind))
	}
	if q.ProtocolID != 0 {
		conds = append(conds, "p.protocol_id = ?")
		args = append(args, q.ProtocolID)
	}
	if q.ViewerID != 0 {
		conds = append(conds, "(p.user_id IS NULL OR p.user_id = ?)")
		args = append(args, q.ViewerID)
	} else {
		conds = append(conds, "p.user_id IS NULL")
	}
	if q.AfterID != 0 {
		conds = append(conds, "p.id < ?")
		args = append(args, q.AfterID)
	}
	args = append(args, q.Limit)
	return queryPredictions(ctx, db.conn(), "list predictions",
		predictionSelect+" WHERE "+strings.Join(conds, " AND ")+" ORDER BY p.id DESC LIMIT ?", args...)
}

// LatestPredictions returns, keyed by protocol id, each protocol's newest
// (highest id) market-wide prediction of kind and horizonDays, with its
// outcome, in one statement whatever the number of protocols; a protocol
// without one is absent. Errors: only internal ones.
func (db *DB) LatestPredictions(ctx context.Context, kind obsqra.PredictionKind, horizonDays int, protocolIDs []int64) (map[int64]obsqra.Prediction, error) {
	return latestPredictions(ctx, db.conn(), kind, horizonDays, protocolIDs)
}

// LatestPredictions is (*DB).LatestPredictions as this unit of work sees it.
func (tx *Tx) LatestPredictions(ctx context.Context, kind obsqra.PredictionKind, horizonDays int, protocolIDs []int64) (map[int64]obsqra.Prediction, error) {
	return latestPredictions(ctx, tx.conn(), kind, horizonDays, protocolIDs)
}

func latestPredictions(ctx context.Context, c conn, kind obsqra.PredictionKind, horizonDays int, protocolIDs []int64) (map[int64]obsqra.Prediction, error) {
	out := make(map[int64]obsqra.Prediction, len(protocolIDs))
	if len(protocolIDs) == 0 {
		return out, nil
	}
	args := make([]any, 0, len(protocolIDs)+2)
	args = append(args, string(kind), horizonDays)
	for _, id := range protocolIDs {
		args = append(args, id)
	}
	// As in latestMetrics, a subquery per protocol reads the first entry of
	// predictions_protocol_idx (protocol_id, kind, horizon_days, user_id,
	// id DESC) at (protocol, kind, horizon, NULL). It orders by user_id,
	// which is NULL in every row it considers, because with ORDER BY id
	// DESC alone PostgreSQL walks the primary key backwards instead,
	// filtering, and a protocol without such a forecast then costs a scan
	// of the whole table (4 ms against 0.1 ms for 6 protocols over 44,000
	// predictions); no other index gives (user_id, id DESC).
	ps, err := queryPredictions(ctx, c, "load latest predictions", "SELECT "+predictionColumns+
		" FROM protocols pr JOIN predictions p ON p.id = (SELECT s.id FROM predictions s"+
		" WHERE s.protocol_id = pr.id AND s.kind = ? AND s.horizon_days = ? AND s.user_id IS NULL"+
		" ORDER BY s.user_id, s.id DESC LIMIT 1)"+
		" LEFT JOIN prediction_outcomes o ON o.prediction_id = p.id"+
		" WHERE pr.id IN ("+placeholders(len(protocolIDs))+")", args...)
	if err != nil {
		return nil, err
	}
	for _, p := range ps {
		out[p.ProtocolID] = p
	}
	return out, nil
}

// LatestSuggestion returns the user's newest REBALANCE_SUGGESTION
// prediction, with its outcome, and whether an allocation followed it
// (has it as its suggestion), in one statement.
// Errors: ENOTFOUND when the user has no suggestion; otherwise internal ones.
func (db *DB) LatestSuggestion(ctx context.Context, userID int64) (p *obsqra.Prediction, followed bool, err error) {
	return latestSuggestion(ctx, db.conn(), userID)
}

// LatestSuggestion is (*DB).LatestSuggestion as this unit of work sees it.
func (tx *Tx) LatestSuggestion(ctx context.Context, userID int64) (p *obsqra.Prediction, followed bool, err error) {
	return latestSuggestion(ctx, tx.conn(), userID)
}

func latestSuggestion(ctx context.Context, c conn, userID int64) (*obsqra.Prediction, bool, error) {
	p := new(obsqra.Prediction)
	var followed bool
	err := c.queryRow(ctx, "SELECT "+predictionColumns+
		", EXISTS (SELECT 1 FROM allocations a WHERE a.suggestion_id = p.id)"+
		" FROM predictions p LEFT JOIN prediction_outcomes o ON o.prediction_id = p.id"+
		" WHERE p.user_id = ? AND p.kind = ? ORDER BY p.id DESC LIMIT 1",
		userID, string(obsqra.PredictionRebalanceSuggestion)).Scan(append(predictionScanArgs(p), &followed)...)
	if err != nil {
		return nil, false, translate(err, "load latest suggestion", "suggestion")
	}
	return p, followed, nil
}

// DuePredictions returns at most limit predictions without an outcome
// whose target day is from or later and before before, and whose id is
// above afterID, in id order: a scorer passes the last id it saw to read
// the next batch. The lower bound keeps a scorer from rereading, forever,
// predictions it had to give up on.
// Errors: EINVALID for a limit below 1; otherwise internal ones.
func (db *DB) DuePredictions(ctx context.Context, from, before obsqra.Date, afterID int64, limit int) ([]obsqra.Prediction, error) {
	if limit < 1 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "limit must be at least 1, got %d", limit)
	}
	return queryPredictions(ctx, db.conn(), "list due predictions",
		predictionSelect+" WHERE o.prediction_id IS NULL AND p.target >= ? AND p.target < ? AND p.id > ? ORDER BY p.id LIMIT ?",
		from.String(), before.String(), afterID, limit)
}

// InsertPredictionOutcome records what became of a prediction: the value
// actual observed on its target day and errValue (actual − point), scored
// now. It reports false, and writes nothing, when the prediction is scored
// already: an outcome is never replaced.
// Errors: only internal ones (an unknown prediction among them).
func (tx *Tx) InsertPredictionOutcome(ctx context.Context, predictionID int64, actual, errValue float64) (bool, error) {
	c := tx.conn()
	n, err := c.execCount(ctx, `
		INSERT INTO prediction_outcomes (prediction_id, actual, error, scored_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (prediction_id) DO NOTHING`,
		predictionID, actual, errValue, c.d.timeArg(tx.now()))
	if err != nil {
		return false, translate(err, "insert prediction outcome", "prediction")
	}
	return n == 1, nil
}

// AccuracyQuery selects the scored predictions an accuracy summary covers.
type AccuracyQuery struct {
	Kind        obsqra.PredictionKind
	HorizonDays int
	// TargetFrom and TargetTo bound the target day, both inclusive.
	TargetFrom, TargetTo obsqra.Date
	// UserID 0 selects the market's predictions (no user); any other, that
	// user's own only.
	UserID int64
	// Bins is the number of equal-width confidence bins, 1–100.
	Bins int
}

// AccuracyBin sums the scored predictions whose confidence fell in bin Bin
// of [0, 1] (the last bin includes 1).
type AccuracyBin struct {
	Bin           int
	Count         int
	SumConfidence float64
	// Hits counts the predictions whose actual value fell within tolerance
	// of the point.
	Hits int
	// SumAbsError sums |actual − point|; SumAbsNaiveError |actual − last|,
	// the naive forecast's error.
	SumAbsError      float64
	SumAbsNaiveError float64
	// In80 and In95 count the actual values inside the 80 % and the 95 %
	// intervals.
	In80, In95 int
	// Moving counts the predictions recorded as made from a series that
	// moved (moved true; a NULL, as before the column existed, is not);
	// MovingIn80 and MovingIn95 those of them whose actual value fell
	// inside the 80 % and the 95 % intervals.
	Moving, MovingIn80, MovingIn95 int
}

// PredictionAccuracy sums up the scored predictions q selects, per
// confidence bin, in one aggregate statement: the work stays in the
// database however many predictions matured. Bins without predictions are
// left out. Errors: EINVALID for a bin count outside 1–100; internal ones.
func (db *DB) PredictionAccuracy(ctx context.Context, q AccuracyQuery) ([]AccuracyBin, error) {
	if q.Bins < 1 || q.Bins > 100 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "bins must be between 1 and 100, got %d", q.Bins)
	}
	// The bin of a confidence c is min(floor(c·Bins), Bins−1), written as a
	// ladder of comparisons: portable, where casts round on one dialect
	// and truncate on the other.
	var bin strings.Builder
	var args []any
	bin.WriteString("CASE")
	for i := 1; i < q.Bins; i++ {
		bin.WriteString(" WHEN p.confidence < ? THEN " + strconv.Itoa(i-1))
		args = append(args, float64(i)/float64(q.Bins))
	}
	bin.WriteString(" ELSE " + strconv.Itoa(q.Bins-1) + " END")
	user := "p.user_id IS NULL"
	// moved is compared with a bound true: boolean on PostgreSQL, INTEGER
	// 1 on SQLite; NULL (not recorded) compares as unknown, so not moving.
	args = append(args, true)
	args = append(args, string(q.Kind), q.HorizonDays, q.TargetFrom.String(), q.TargetTo.String())
	if q.UserID != 0 {
		user = "p.user_id = ?"
		args = append(args, q.UserID)
	}
	rows, err := db.conn().query(ctx, `
		SELECT bin, COUNT(*), SUM(confidence), SUM(hit), SUM(abs_error), SUM(abs_naive), SUM(in80), SUM(in95),
			SUM(moving), SUM(moving * in80), SUM(moving * in95) FROM (
			SELECT `+bin.String()+` AS bin, p.confidence,
				CASE WHEN ABS(o.actual - p.point) <= p.tolerance THEN 1 ELSE 0 END AS hit,
				ABS(o.actual - p.point) AS abs_error, ABS(o.actual - p.last) AS abs_naive,
				CASE WHEN o.actual >= p.lower80 AND o.actual <= p.upper80 THEN 1 ELSE 0 END AS in80,
				CASE WHEN o.actual >= p.lower95 AND o.actual <= p.upper95 THEN 1 ELSE 0 END AS in95,
				CASE WHEN p.moved = ? THEN 1 ELSE 0 END AS moving
			FROM predictions p JOIN prediction_outcomes o ON o.prediction_id = p.id
			WHERE p.kind = ? AND p.horizon_days = ? AND p.target >= ? AND p.target <= ? AND `+user+`
		) AS scored GROUP BY bin ORDER BY bin`, args...)
	if err != nil {
		return nil, translate(err, "sum up prediction accuracy", "prediction")
	}
	defer rows.Close()
	var out []AccuracyBin
	for rows.Next() {
		var b AccuracyBin
		if err := rows.Scan(&b.Bin, &b.Count, &b.SumConfidence, &b.Hits, &b.SumAbsError, &b.SumAbsNaiveError, &b.In80, &b.In95,
			&b.Moving, &b.MovingIn80, &b.MovingIn95); err != nil {
			return nil, translate(err, "scan prediction accuracy", "prediction")
		}
		out = append(out, b)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "sum up prediction accuracy", "row")
	}
	return out, nil
}

// queryPredictions runs query, which selects predictionColumns, and
// returns its rows; op names it in errors.
func queryPredictions(ctx context.Context, c conn, op, query string, args ...any) ([]obsqra.Prediction, error) {
	rows, err := c.query(ctx, query, args...)
	if err != nil {
		return nil, translate(err, op, "prediction")
	}
	defer rows.Close()
	var out []obsqra.Prediction
	for rows.Next() {
		var p obsqra.Prediction
		if err := rows.Scan(predictionScanArgs(&p)...); err != nil {
			return nil, translate(err, op, "prediction")
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, op, "row")
	}
	return out, nil
}
