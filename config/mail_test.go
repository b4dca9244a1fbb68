package config

import (
	"strings"
	"testing"
)

func TestLoadSMTP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url     string
		want    *SMTP
		wantErr string
	}{
		{"smtp://mailer:hunter2@smtp.example.com", &SMTP{Security: SMTPStartTLS, Host: "smtp.example.com", Port: 587, Username: "mailer", Password: "hunter2"}, ""},
		{"SMTPS://smtp.example.com:4650", &SMTP{Security: SMTPImplicitTLS, Host: "smtp.example.com", Port: 4650}, ""},
		{"smtp+insecure://[::1]:1025", &SMTP{Security: SMTPPlaintext, Host: "::1", Port: 1025}, ""},
		{"smtp+insecure://localhost", &SMTP{Security: SMTPPlaintext, Host: "localhost", Port: 25}, ""},
		{"http://mailer:hunter2@smtp.example.com", nil, "SMTP_URL: is not one of smtp://"},
		{"smtp://mailer:hunter2@smtp.example.com:0", nil, "SMTP_URL: has a port that is not 1-65535"},
		{"smtp://mailer:hunter2@smtp.example.com/inbox", nil, "SMTP_URL: is not one of"},
		{"smtp://mailer:hunter2@smtp.example.com?tls=off", nil, "SMTP_URL: is not one of"},
		{"smtp://mailer:hunter2@:587", nil, "SMTP_URL: is not one of"},
		{"smtp://mailer:hunter2@smtp.example.com:%zz", nil, "SMTP_URL: is not a URL"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(env(map[string]string{"SMTP_URL": tt.url}))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Load(SMTP_URL=%s) error = %v, want %q", tt.url, err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "hunter2") {
					t.Fatalf("Load(SMTP_URL=%s) error = %v, which shows the password", tt.url, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Load(SMTP_URL=%s) error = %v", tt.url, err)
			}
			if *cfg.SMTP != *tt.want {
				t.Fatalf("Load(SMTP_URL=%s).SMTP = %+v, want %+v", tt.url, *cfg.SMTP, *tt.want)
			}
			if sum := cfg.SMTP.summary(); strings.Contains(sum, "hunter2") || !strings.Contains(sum, cfg.SMTP.Addr()) {
				t.Fatalf("summary() = %q, want the address and no password", sum)
			}
		})
	}
}

func TestLoadMailAddresses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     map[string]string
		wantErr string
	}{
		{"from with a name", map[string]string{"MAIL_FROM": `"Obsqra, alerts" <alerts@example.com>`}, ""},
		{"from without an address", map[string]string{"MAIL_FROM": "Obsqra"}, `MAIL_FROM: "Obsqra" is not a mail address`},
		{"app url with a path", map[string]string{"PUBLIC_APP_URL": "https://example.com/app/"}, ""},
		{"app url with a query", map[string]string{"PUBLIC_APP_URL": "https://example.com/?x=1"}, "PUBLIC_APP_URL: "},
		{"app url with a user", map[string]string{"PUBLIC_APP_URL": "https://me@example.com"}, "PUBLIC_APP_URL: "},
		{"app url not http", map[string]string{"PUBLIC_APP_URL": "ftp://example.com"}, "PUBLIC_APP_URL: "},
		{"api url with a query", map[string]string{"PUBLIC_API_URL": "https://example.com/?x=1"}, "PUBLIC_API_URL: "},
		{"alert risk delta 0", map[string]string{"ALERT_RISK_DELTA": "0"}, "ALERT_RISK_DELTA: "},
		{"alert risk delta 101", map[string]string{"ALERT_RISK_DELTA": "101"}, "ALERT_RISK_DELTA: "},
		{"alert interval 30s", map[string]string{"ALERT_MIN_INTERVAL": "30s"}, "ALERT_MIN_INTERVAL: 30s is not from 1m to 24h"},
		{"alert interval 25h", map[string]string{"ALERT_MIN_INTERVAL": "25h"}, "ALERT_MIN_INTERVAL: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := Load(env(tt.env))
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("Load() error = %v, want none", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("Load() error = %v, want %q", err, tt.wantErr)
			case err == nil && strings.HasSuffix(cfg.PublicAppURL, "/"):
				t.Fatalf("PublicAppURL = %q, want no trailing slash", cfg.PublicAppURL)
			}
		})
	}
}

func TestPublicAPIURLFollowsAPIPort(t *testing.T) {
	t.Parallel()
	cfg, err := Load(env(map[string]string{"API_PORT": "8123"}))
	if err != nil {
		t.Fatalf("Load() error = %v", err)
	}
	if cfg.PublicAPIURL != "http://localhost:8123" {
		t.Errorf("PublicAPIURL = %q, want http://localhost:8123 (from API_PORT)", cfg.PublicAPIURL)
	}
}
