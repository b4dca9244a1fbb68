package market

import (
	"context"
	"fmt"
	"time"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/store"
)

// ImportResult counts what Import stored.
type ImportResult struct {
	// ProtocolsCreated counts the protocols the file named that did not
	// exist (Aave format).
	ProtocolsCreated int
	// Samples counts the samples in the file; Created those that were new
	// (importing a file twice creates nothing the second time).
	Samples, Created int
}

// Import stores what a metrics CSV holds (see ParseMetricsCSV) with source
// "import": it creates the protocols the file needs that do not exist yet,
// then ingests the samples, each scored and recorded as Ingest does, all in
// one unit of work: a file imports whole or not at all. Every sample is
// validated before anything is written, with the sample's number, protocol
// and time in the error. On SQLite the import holds the database's write
// lock while it runs (some seconds for the whole shared Aave file), so a
// running server's writes wait. Importing the same file again stores
// nothing. It is an operator's command and takes no principal.
// Errors: EINVALID naming the sample and field; ECONFLICT when a different
// sample with the same key is stored already; internal ones.
func (s *Service) Import(ctx context.Context, imp *Import) (ImportResult, error) {
	res := ImportResult{Samples: len(imp.Samples)}
	existing, err := s.db.Protocols(ctx)
	if err != nil {
		return res, err
	}
	known := make(map[string]*obsqra.Protocol, len(existing)+len(imp.Protocols))
	for i := range existing {
		known[existing[i].Slug] = &existing[i]
	}
	var missing []obsqra.ProtocolInput
	for _, p := range imp.Protocols {
		if known[p.Slug] != nil {
			continue
		}
		if err := validateProtocol(&p); err != nil {
			return res, obsqra.Errorf(obsqra.EINVALID, "protocol %s: %s", p.Slug, obsqra.ErrorMessage(err))
		}
		missing = append(missing, p)
		known[p.Slug] = &obsqra.Protocol{Slug: p.Slug}
	}
	now := s.cfg.Now()
	for i := range imp.Samples {
		if err := validateInput(&imp.Samples[i], known, now); err != nil {
			return res, obsqra.Errorf(obsqra.EINVALID, "sample %d (%s at %s): %s", i+1, imp.Samples[i].Protocol,
				imp.Samples[i].ObservedAt.UTC().Format(time.RFC3339), obsqra.ErrorMessage(err))
		}
	}
	err = s.db.WithTx(ctx, func(tx *store.Tx) error {
		res.ProtocolsCreated, res.Created = 0, 0
		for _, p := range missing {
			if _, _, err := tx.UpsertProtocol(ctx, p); err != nil {
				return fmt.Errorf("create protocol %s: %w", p.Slug, err)
			}
		}
		res.ProtocolsCreated = len(missing)
		protocols, err := tx.Protocols(ctx)
		if err != nil {
			return err
		}
		bySlug := make(map[string]*obsqra.Protocol, len(protocols))
		for i := range protocols {
			bySlug[protocols[i].Slug] = &protocols[i]
		}
		// Chunks bound the memory of one ingestion step (its daily window,
		// its events), not the unit of work.
		for start := 0; start < len(imp.Samples); start += importChunk {
			chunk := imp.Samples[start:min(start+importChunk, len(imp.Samples))]
			done, err := s.ingestTx(ctx, tx, obsqra.SourceImport, chunk, bySlug)
			if err != nil {
				return fmt.Errorf("samples %d-%d: %w", start+1, start+len(chunk), err)
			}
			for _, d := range done {
				if d.Created {
					res.Created++
				}
			}
		}
		return nil
	})
	if len(missing) > 0 {
		s.dropProtocols()
	}
	if err != nil {
		res.ProtocolsCreated, res.Created = 0, 0
		return res, err
	}
	return res, nil
}
