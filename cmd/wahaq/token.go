package main

import (
	"bufio"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/wahaq/wahaq/internal/access"
)

func init() { register(newTokenCmd) }

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Work with API tokens (the tokens file keeps their SHA-256 only)",
		Args:  noArgs("token", "use a subcommand: hash"),
		RunE:  func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "hash",
		Short: "Read a token on standard input and print its SHA-256 for the tokens file",
		Long: `Read one token on standard input (its first line; surrounding white space is
not part of it) and print its SHA-256 in hex, the "sha256" of an entry of the
tokens file (WAHAQ_API_TOKENS_FILE). The token itself never goes in the file,
nor on the command line (where ps and shell history would see it).

Exit codes: 0 printed; 2 standard input holds no token.`,
		Example: `  wahaq token hash < token.txt
  openssl rand -hex 32 | tee token.txt | wahaq token hash`,
		Args: noArgs("token hash", "give the token on standard input, not as an argument"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			line, err := bufio.NewReader(io.LimitReader(cmd.InOrStdin(), 64<<10)).ReadString('\n')
			if err != nil && err != io.EOF {
				return err
			}
			if strings.TrimSpace(line) == "" {
				return usagef("standard input holds no token: pipe one in, e.g. wahaq token hash < token.txt")
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), access.Hash(line))
			return err
		},
	})
	return cmd
}
