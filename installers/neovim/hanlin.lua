-- Hanlin for Neovim 0.12+: inline (ghost text) completion from a local model.
-- Put this file in ~/.config/nvim/plugin/ (or `require` it from init.lua).
-- Needs `hanlin-lsp` on your PATH (check with `hanlin-lsp --version`).

vim.lsp.config('hanlin', {
  cmd = { 'hanlin-lsp' },            -- add '--log-file', '/tmp/hanlin-lsp.log' to debug
  -- Every buffer with a file type: Hanlin completes any language.
  filetypes = nil,
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  -- The same object is sent at start and answered to workspace/configuration.
  init_options = {
    model = '',            -- catalog id or GGUF path; '' = the model chosen in the Hanlin app
    endpoint = '',         -- a `hanlin remote add` name or URL to complete from; '' = locally
    maxTokens = 64,
    timeBudgetMs = 1500,
    multiline = true,
  },
  settings = {
    hanlin = {
      model = '',
      endpoint = '',
      maxTokens = 64,
      timeBudgetMs = 1500,
      multiline = true,
    },
  },
})
vim.lsp.enable('hanlin')

-- Ask for ghost text as you type (Neovim 0.12's built-in inline completion).
vim.lsp.inline_completion.enable()

-- <Tab> accepts the suggestion (runs the item's command, so Hanlin counts it),
-- otherwise inserts a tab as usual. <M-]> / <M-[> cycle through suggestions.
vim.keymap.set('i', '<Tab>', function()
  if not vim.lsp.inline_completion.get() then
    return '<Tab>'
  end
end, { expr = true, desc = 'Accept Hanlin suggestion' })
vim.keymap.set('i', '<M-]>', function() vim.lsp.inline_completion.select({ count = 1 }) end,
  { desc = 'Next Hanlin suggestion' })
vim.keymap.set('i', '<M-[>', function() vim.lsp.inline_completion.select({ count = -1 }) end,
  { desc = 'Previous Hanlin suggestion' })
