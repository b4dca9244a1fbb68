package store

import (
	"context"

	"github.com/obsqra/obsqra"
)

var riskParamsSelect = "SELECT " + columns("",
	"version", "w_utilization", "w_volatility", "w_liquidity0", "w_liquidity1", "w_liquidity2",
	"w_liquidity3", "w_audit", "w_age", "age_cap_days", "clamp_min", "clamp_max",
	"chain_version", "created_by", "created_at") + " FROM risk_params"

func riskParamsScanArgs(p *obsqra.RiskParams) []any {
	return []any{&p.Version, &p.WUtilization, &p.WVolatility, &p.WLiquidity0, &p.WLiquidity1,
		&p.WLiquidity2, &p.WLiquidity3, &p.WAudit, &p.WAge, &p.AgeCapDays, &p.ClampMin, &p.ClampMax,
		walletScanner{dst: &p.ChainVersion}, idScanner{&p.CreatedBy}, scanTime(&p.CreatedAt)}
}

// ActiveRiskParams returns the newest version of the risk parameters (the
// migrations seed version 1). Errors: only internal ones.
func (db *DB) ActiveRiskParams(ctx context.Context) (*obsqra.RiskParams, error) {
	return riskParamsWhere(ctx, db.conn(), "version = (SELECT MAX(version) FROM risk_params)")
}

// ActiveRiskParams is (*DB).ActiveRiskParams as this unit of work sees it.
func (tx *Tx) ActiveRiskParams(ctx context.Context) (*obsqra.RiskParams, error) {
	return riskParamsWhere(ctx, tx.conn(), "version = (SELECT MAX(version) FROM risk_params)")
}

func riskParamsWhere(ctx context.Context, c conn, cond string, args ...any) (*obsqra.RiskParams, error) {
	p := new(obsqra.RiskParams)
	if err := c.queryRow(ctx, riskParamsSelect+" WHERE "+cond, args...).Scan(riskParamsScanArgs(p)...); err != nil {
		return nil, translate(err, "load risk parameters", "risk parameters version")
	}
	return p, nil
}

// InsertRiskParams stores p as the next version and sets p.Version and
// p.CreatedAt, with the change's TopicMarketChanged event. It takes no lock: on PostgreSQL, when a concurrent unit of
// work stores the same version first, it fails, which is what a caller that
// merged p over the version it read needs (numbering p after the other's
// would silently undo the other's change).
// Errors: ECONFLICT when another unit of work stored that version first
// (PostgreSQL only: SQLite runs one unit of work at a time); otherwise
// internal ones (the caller validates).
func (tx *Tx) InsertRiskParams(ctx context.Context, p *obsqra.RiskParams) error {
	c := tx.conn()
	var by any
	if p.CreatedBy != 0 {
		by = p.CreatedBy
	}
	now := tx.now()
	err := c.queryRow(ctx, `
		INSERT INTO risk_params (version, w_utilization, w_volatility, w_liquidity0, w_liquidity1,
			w_liquidity2, w_liquidity3, w_audit, w_age, age_cap_days, clamp_min, clamp_max, chain_version, created_by, created_at)
		SELECT COALESCE(MAX(version), 0) + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ? FROM risk_params
		RETURNING version`,
		p.WUtilization, p.WVolatility, p.WLiquidity0, p.WLiquidity1, p.WLiquidity2, p.WLiquidity3,
		p.WAudit, p.WAge, p.AgeCapDays, p.ClampMin, p.ClampMax, stringArg(p.ChainVersion), by, c.d.timeArg(now)).Scan(&p.Version)
	if err != nil {
		return translate(err, "insert risk parameters", "risk parameters version")
	}
	p.CreatedAt = now
	return tx.AppendEvent(ctx, obsqra.MarketChangedEvent(obsqra.MarketRiskParamsChanged, 0))
}

var riskScoreColumns = []string{
	"id", "protocol_id", "sample_id", "observed_at", "score",
	"c_utilization", "c_volatility", "c_liquidity", "c_audit", "c_age", "c_unclamped",
	"in_utilization", "in_volatility", "in_liquidity", "in_audit_score", "in_age_days",
	"params_version", "model_version", "computed_at", "decision_id"}

func riskScoreScanArgs(s *obsqra.RiskScore) []any {
	c, in := &s.Components, &s.Inputs
	return []any{&s.ID, &s.ProtocolID, &s.SampleID, scanTime(&s.ObservedAt), &s.Score,
		&c.Utilization, &c.Volatility, &c.Liquidity, &c.Audit, &c.Age, &c.Unclamped,
		&in.Utilization, &in.Volatility, &in.Liquidity, &in.AuditScore, &in.AgeDays,
		&s.ParamsVersion, &s.ModelVersion, scanTime(&s.ComputedAt), &s.DecisionID}
}

// InsertRiskScore stores s and sets s.ID. Errors: ECONFLICT when the
// sample is scored already; otherwise internal ones.
func (tx *Tx) InsertRiskScore(ctx context.Context, s *obsqra.RiskScore) error {
	c := tx.conn()
	co, in := s.Components, s.Inputs
	err := c.queryRow(ctx, `
		INSERT INTO risk_scores (protocol_id, sample_id, observed_at, score,
			c_utilization, c_volatility, c_liquidity, c_audit, c_age, c_unclamped,
			in_utilization, in_volatility, in_liquidity, in_audit_score, in_age_days,
			params_version, model_version, computed_at, decision_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		RETURNING id`,
		s.ProtocolID, s.SampleID, c.d.timeArg(s.ObservedAt), s.Score,
		co.Utilization, co.Volatility, co.Liquidity, co.Audit, co.Age, co.Unclamped,
		in.Utilization, in.Volatility, in.Liquidity, in.AuditScore, in.AgeDays,
		s.ParamsVersion, s.ModelVersion, c.d.timeArg(s.ComputedAt), s.DecisionID).Scan(&s.ID)
	if err != nil {
		return translate(err, "insert risk score", "risk score")
	}
	s.ObservedAt, s.ComputedAt = stamp(s.ObservedAt), stamp(s.ComputedAt)
	return nil
}

// RiskScoreBySample returns the score of one sample.
// Errors: ENOTFOUND when it is not scored; otherwise internal ones.
func (tx *Tx) RiskScoreBySample(ctx context.Context, sampleID int64) (*obsqra.RiskScore, error) {
	return riskScoreWhere(ctx, tx.conn(), "sample_id = ?", sampleID)
}

// RiskScore returns the score with the given id.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) RiskScore(ctx context.Context, id int64) (*obsqra.RiskScore, error) {
	return riskScoreWhere(ctx, db.conn(), "id = ?", id)
}

// RiskScoreByDecision returns the score a decision recorded.
// Errors: ENOTFOUND when there is none; otherwise internal ones.
func (db *DB) RiskScoreByDecision(ctx context.Context, decisionID int64) (*obsqra.RiskScore, error) {
	return riskScoreWhere(ctx, db.conn(), "decision_id = ?", decisionID)
}

func riskScoreWhere(ctx context.Context, c conn, cond string, arg any) (*obsqra.RiskScore, error) {
	s := new(obsqra.RiskScore)
	err := c.queryRow(ctx, "SELECT "+columns("", riskScoreColumns...)+" FROM risk_scores WHERE "+cond, arg).
		Scan(riskScoreScanArgs(s)...)
	if err != nil {
		return nil, translate(err, "load risk score", "risk score")
	}
	return s, nil
}

// LatestRiskScores returns each protocol's newest score (by observation
// time), keyed by protocol id, in one statement; a protocol never scored is
// absent. Errors: only internal ones.
func (db *DB) LatestRiskScores(ctx context.Context, protocolIDs []int64) (map[int64]obsqra.RiskScore, error) {
	out := make(map[int64]obsqra.RiskScore, len(protocolIDs))
	if len(protocolIDs) == 0 {
		return out, nil
	}
	args := make([]any, len(protocolIDs))
	for i, id := range protocolIDs {
		args[i] = id
	}
	c := db.conn()
	rows, err := c.query(ctx, "SELECT "+columns("r.", riskScoreColumns...)+
		" FROM protocols p JOIN risk_scores r ON r.id = (SELECT s.id FROM risk_scores s WHERE s.protocol_id = p.id"+
		" ORDER BY s.observed_at DESC, s.id DESC LIMIT 1) WHERE p.id IN ("+placeholders(len(protocolIDs))+")", args...)
	if err != nil {
		return nil, translate(err, "load latest risk scores", "risk score")
	}
	defer rows.Close()
	for rows.Next() {
		var s obsqra.RiskScore
		if err := rows.Scan(riskScoreScanArgs(&s)...); err != nil {
			return nil, translate(err, "scan latest risk scores", "risk score")
		}
		out[s.ProtocolID] = s
	}
	if err := rows.Err(); err != nil {
		return nil, translate(err, "load latest risk scores", "row")
	}
	return out, nil
}

// RiskHistory returns a page of each protocol's scores, newest first,
// keyed by protocol id, in one statement per 200 protocols.
// Errors: EINVALID for a page size below 1; otherwise internal ones.
func (db *DB) RiskHistory(ctx context.Context, protocolIDs []int64, page obsqra.HistoryPage) (map[int64][]obsqra.RiskScore, error) {
	return readPages(ctx, db.conn(), riskPagesTable, protocolIDs, page)
}
