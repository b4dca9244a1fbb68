package resolvers

import (
	"context"
	"strconv"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/account"
	"github.com/obsqra/obsqra/graph"
)

// Me resolves me: the signed-in user, null when anonymous, and the refusal
// when the request carried an invalid or expired token.
func (r *queryResolver) Me(ctx context.Context) (*obsqra.User, error) {
	return obsqra.Viewer(ctx)
}

// Users resolves Query.users: an admin's search of accounts, newest first,
// with id cursors.
func (r *queryResolver) Users(ctx context.Context, filter *obsqra.UserFilter, first *int, after *string) (*graph.UserConnection, error) {
	n, err := pageSize(first)
	if err != nil {
		return nil, err
	}
	var afterID int64
	if after != nil {
		if afterID, err = parseIDCursor(*after); err != nil {
			return nil, err
		}
	}
	var f obsqra.UserFilter
	if filter != nil {
		f = *filter
	}
	rows, err := r.Accounts.Users(ctx, f, n, afterID)
	if err != nil {
		return nil, err
	}
	conn := &graph.UserConnection{
		PageInfo: &graph.PageInfo{HasPreviousPage: after != nil, HasNextPage: len(rows) > n},
		Edges:    []*graph.UserEdge{},
	}
	rows = rows[:min(len(rows), n)]
	for i := range rows {
		conn.Edges = append(conn.Edges, &graph.UserEdge{Cursor: idCursor(rows[i].ID), Node: &rows[i]})
	}
	if len(conn.Edges) > 0 {
		conn.PageInfo.StartCursor, conn.PageInfo.EndCursor = &conn.Edges[0].Cursor, &conn.Edges[len(conn.Edges)-1].Cursor
	}
	return conn, nil
}

// Register resolves register.
func (r *mutationResolver) Register(ctx context.Context, in graph.RegisterInput) (*obsqra.Registration, error) {
	return r.Accounts.Register(ctx, account.RegisterInput{Email: in.Email, Password: in.Password, FullName: in.FullName})
}

// Login resolves login.
func (r *mutationResolver) Login(ctx context.Context, in graph.LoginInput) (*obsqra.AuthPayload, error) {
	return r.Accounts.Login(ctx, in.Email, in.Password)
}

// RefreshSession resolves refreshSession.
func (r *mutationResolver) RefreshSession(ctx context.Context, refreshToken string) (*obsqra.AuthPayload, error) {
	return r.Accounts.Refresh(ctx, refreshToken)
}

// Logout resolves logout.
func (r *mutationResolver) Logout(ctx context.Context, refreshToken *string, everywhere *bool) (bool, error) {
	var tok string
	if refreshToken != nil {
		tok = *refreshToken
	}
	var err error
	if everywhere != nil && *everywhere {
		if tok != "" {
			return false, obsqra.Errorf(obsqra.EINVALID, "give either refreshToken or everywhere, not both")
		}
		err = r.Accounts.LogoutEverywhere(ctx)
	} else {
		err = r.Accounts.Logout(ctx, tok)
	}
	if err != nil {
		return false, err
	}
	return true, nil
}

// UpdatePreferences resolves updatePreferences.
func (r *mutationResolver) UpdatePreferences(ctx context.Context, patch obsqra.PreferencesPatch) (*obsqra.User, error) {
	return r.Accounts.UpdatePreferences(ctx, patch)
}

// ChangePassword resolves changePassword.
func (r *mutationResolver) ChangePassword(ctx context.Context, in graph.ChangePasswordInput) (bool, error) {
	if err := r.Accounts.ChangePassword(ctx, in.CurrentPassword, in.NewPassword); err != nil {
		return false, err
	}
	return true, nil
}

// DeactivateAccount resolves deactivateAccount.
func (r *mutationResolver) DeactivateAccount(ctx context.Context, password string) (bool, error) {
	if err := r.Accounts.DeactivateAccount(ctx, password); err != nil {
		return false, err
	}
	return true, nil
}

// VerifyEmail resolves verifyEmail.
func (r *mutationResolver) VerifyEmail(ctx context.Context, token string) (*obsqra.User, error) {
	return r.Accounts.VerifyEmail(ctx, token)
}

// ResendVerification resolves resendVerification.
func (r *mutationResolver) ResendVerification(ctx context.Context, email *string) (bool, error) {
	e := ""
	if email != nil {
		e = *email
	}
	if err := r.Accounts.ResendVerification(ctx, e); err != nil {
		return false, err
	}
	return true, nil
}

// RequestPasswordReset resolves requestPasswordReset.
func (r *mutationResolver) RequestPasswordReset(ctx context.Context, email string) (bool, error) {
	if err := r.Accounts.RequestPasswordReset(ctx, email); err != nil {
		return false, err
	}
	return true, nil
}

// ResetPassword resolves resetPassword.
func (r *mutationResolver) ResetPassword(ctx context.Context, in graph.ResetPasswordInput) (bool, error) {
	if err := r.Accounts.ResetPassword(ctx, in.Token, in.NewPassword); err != nil {
		return false, err
	}
	return true, nil
}

// ChangeEmail resolves changeEmail.
func (r *mutationResolver) ChangeEmail(ctx context.Context, in graph.ChangeEmailInput) (bool, error) {
	if err := r.Accounts.ChangeEmail(ctx, in.NewEmail, in.Password); err != nil {
		return false, err
	}
	return true, nil
}

// SetUserActive resolves setUserActive.
func (r *mutationResolver) SetUserActive(ctx context.Context, userID string, active bool) (*obsqra.User, error) {
	id, err := obsqra.ParseNodeIDOf(obsqra.NodeUser, userID)
	if err != nil {
		return nil, err
	}
	return r.Accounts.SetUserActive(ctx, id, active)
}

// FailedMails resolves failedMails (admins only).
func (r *queryResolver) FailedMails(ctx context.Context, first *int) ([]*obsqra.FailedMail, error) {
	n := defaultFirst
	if first != nil {
		n = *first
	}
	ms, err := r.Accounts.FailedMails(ctx, n)
	if err != nil {
		return nil, err
	}
	out := make([]*obsqra.FailedMail, len(ms))
	for i := range ms {
		out[i] = &ms[i]
	}
	return out, nil
}

type failedMailResolver struct{ *Resolver }

// FailedMail returns the resolvers of the FailedMail type.
func (r *Resolver) FailedMail() graph.FailedMailResolver { return &failedMailResolver{r} }

// ID resolves FailedMail.id: the mail's number in the queue (not a Node:
// nothing refetches it).
func (r *failedMailResolver) ID(_ context.Context, m *obsqra.FailedMail) (string, error) {
	return strconv.FormatInt(m.ID, 10), nil
}
