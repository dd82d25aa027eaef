-- Drives a real, headless Neovim 0.11 for tests/e2e/test_neovim.py.
--
-- Loads the shipped installers/neovim/hanlin.lua, points its `cmd` at the installed
-- hanlin-lsp, opens a real file, asks textDocument/completion and
-- textDocument/inlineCompletion (0.11 has no inline completion client: a plain
-- request), accepts the completion item (its textEdit, then its command), types a
-- trigger character in Insert mode to see the popup menu open by itself, and writes
-- what it saw as JSON to HANLIN_NVIM_OUT. Neovim exits when done.

local out_path = assert(os.getenv('HANLIN_NVIM_OUT'))
local out = { steps = {} }

local function finish()
  local f = assert(io.open(out_path, 'w'))
  f:write(vim.json.encode(out))
  f:close()
  vim.cmd('qa!')
end

local function step(name) table.insert(out.steps, name) end

local function fail(message)
  out.error = message
  finish()
end

local ok, err = pcall(function()
  dofile(assert(os.getenv('HANLIN_NVIM_CONFIG')))
  step('config loaded')
  -- What a user edits in the shipped file: the path of the server (and, here, a short
  -- answer with a generous budget so that a loaded 2-core CI machine still answers).
  vim.lsp.config('hanlin', {
    cmd = { assert(os.getenv('HANLIN_LSP')) },
    init_options = { maxTokens = 16, timeBudgetMs = 20000 },
    settings = { hanlin = { maxTokens = 16, timeBudgetMs = 20000 } },
    -- edits made by this script reach the server before its next request (typing
    -- in Insert mode flushes them itself)
    flags = { debounce_text_changes = 0 },
  })
  vim.cmd.edit(assert(os.getenv('HANLIN_NVIM_FILE')))
  out.filetype = vim.bo.filetype

  local client
  if not vim.wait(20000, function()
    client = vim.lsp.get_clients({ name = 'hanlin', bufnr = 0 })[1]
    return client ~= nil and client.initialized
  end, 50) then
    return fail('hanlin-lsp did not attach')
  end
  step('attached')
  out.trigger_characters = client.server_capabilities.completionProvider.triggerCharacters
  out.completeopt = vim.bo.completeopt
  out.has_ctrl_space = vim.fn.maparg('<C-Space>', 'i') ~= ''
  out.inline_completion_api = vim.lsp.inline_completion ~= nil

  local state
  if not vim.wait(60000, function()
    local r = client:request_sync('hanlin/completionStats', vim.NIL, 5000, 0)
    state = r and r.result and r.result.state
    return state == 'ready' or state == 'failed'
  end, 200) or state ~= 'ready' then
    return fail('model state ' .. tostring(state))
  end
  step('ready')

  -- A new function at the end of the file; the cursor after `return `.
  local last = vim.api.nvim_buf_line_count(0)
  vim.api.nvim_buf_set_lines(0, last, last, false,
    { '', 'def clamp(x, lo, hi):', '    """Clamp x to the range [lo, hi]."""', '    return ' })
  local row = vim.api.nvim_buf_line_count(0)
  out.row = row - 1
  -- (not the window's cursor: Normal mode cannot stand after the line's last character)
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(0) },
    position = { line = row - 1, character = 11 },
  }

  local r = client:request_sync('textDocument/completion', params, 30000, 0)
  if not r or r.err then return fail('completion: ' .. vim.inspect(r)) end
  local result = r.result or {}
  out.items = result.items or result
  step('completion')

  local inline_params = vim.tbl_extend('force', params, { context = { triggerKind = 2 } })
  local ri = client:request_sync('textDocument/inlineCompletion', inline_params, 30000, 0)
  if not ri or ri.err then return fail('inlineCompletion: ' .. vim.inspect(ri)) end
  out.inline = ri.result
  step('inline')

  local item = out.items[1]
  if item then
    local buf = vim.api.nvim_get_current_buf()
    vim.lsp.util.apply_text_edits({ item.textEdit }, buf, client.offset_encoding)
    if item.command then client:exec_cmd(item.command, { bufnr = buf }) end
    step('accepted')
  end
  out.lines = vim.api.nvim_buf_get_lines(0, 0, -1, false)

  -- Insert mode: a new line, then `os.` — `.` is a trigger character, so 0.11's
  -- autotrigger asks for items and the popup menu opens without a key to ask for it.
  vim.api.nvim_buf_set_lines(0, -1, -1, false, { '', 'import os', 'print(os' })
  vim.api.nvim_win_set_cursor(0, { vim.api.nvim_buf_line_count(0), 8 })
  vim.api.nvim_feedkeys('a.', 'nt', false)
  local started = vim.uv.now()
  local function poll()
    if vim.fn.pumvisible() == 1 then
      out.popup = vim.fn.complete_info({ 'items', 'mode' })
      out.popup_ms = vim.uv.now() - started
      step('popup')
      local stats = client:request_sync('workspace/executeCommand',
        { command = 'hanlin.stats', arguments = {} }, 5000, 0)
      out.stats = stats and stats.result
      return finish()
    end
    if vim.uv.now() - started > 30000 then
      out.mode = vim.api.nvim_get_mode().mode
      return fail('no popup menu after typing a trigger character')
    end
    vim.defer_fn(poll, 50)
  end
  vim.defer_fn(poll, 50)
end)
if not ok then fail(tostring(err)) end
