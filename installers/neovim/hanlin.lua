-- Hanlin for Neovim 0.11+: code completion from a local model.
--   0.12+: ghost text (vim.lsp.inline_completion); <Tab> accepts.
--   0.11:  the same text as completion items in the popup menu, popping up by itself
--          after the server's trigger characters (`.`, `(`, space, …) and on <C-Space>.
-- Put this file in ~/.config/nvim/plugin/ (or `require` it from init.lua).
-- Needs `hanlin-lsp` on your PATH (check with `hanlin-lsp --version`).

-- The one settings table: sent at start (init_options) and answered to the server's
-- workspace/configuration. Leave a key out (or nil) for the server's default; `model`
-- left out = the completion model chosen in the Hanlin app.
local settings = {
  -- model = 'qwen2.5-coder-1.5b-base-q4km',   -- catalog id or path to a .gguf
  -- endpoint = 'gpu-box',                     -- a `hanlin remote add` name or URL
  maxTokens = 64,
  timeBudgetMs = 1500,
  multiline = true,
}

vim.lsp.config('hanlin', {
  cmd = { 'hanlin-lsp' },            -- add '--log-file', '/tmp/hanlin-lsp.log' to debug
  -- Every buffer with a file type: Hanlin completes any language.
  filetypes = nil,
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'Cargo.toml', 'go.mod' },
  init_options = settings,
  settings = { hanlin = settings },
})
vim.lsp.enable('hanlin')

if vim.lsp.inline_completion then
  -- Neovim 0.12+: ghost text as you type.
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
else
  -- Neovim 0.11: LSP completion items in the popup menu.
  vim.api.nvim_create_autocmd('LspAttach', {
    group = vim.api.nvim_create_augroup('hanlin', { clear = true }),
    callback = function(args)
      local client = vim.lsp.get_client_by_id(args.data.client_id)
      if not client or client.name ~= 'hanlin' then
        return
      end
      -- noselect: <CR> still ends the line when the menu is open; <C-y> accepts
      -- (which applies the item and runs its command, so Hanlin counts it).
      vim.bo[args.buf].completeopt = 'menuone,noselect,popup'
      vim.lsp.completion.enable(true, client.id, args.buf, { autotrigger = true })
      vim.keymap.set('i', '<C-Space>', vim.lsp.completion.get,
        { buffer = args.buf, desc = 'Ask Hanlin for a completion' })
    end,
  })
end
