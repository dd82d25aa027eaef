; Inno Setup 6 script for Hanlin on Windows (x64).
;
; Built by installers\windows\build.ps1, which first makes the PyInstaller bundle
; (dist\hanlin\) and then runs:
;   ISCC.exe /DAppVersion=0.1.0 /DBackend=cpu /DSourceDir=..\..\dist\hanlin ^
;            /DOutputDir=..\..\dist installers\windows\hanlin.iss
;
; What it installs:
; - the bundle into "%LOCALAPPDATA%\Programs\Hanlin" (just me, no admin) or
;   "C:\Program Files\Hanlin" (all users; the installer asks);
; - Start-menu entries: Hanlin, "Hanlin doctor" (a console), Editor integrations,
;   Uninstall; optionally a desktop icon;
; - optionally: `hanlin` and `hanlin-lsp` on PATH, and .gguf files opening with Hanlin.
; Upgrading: a newer installer over an older one replaces the program (its _internal
; folder first, so no old file lingers) and keeps settings, chat history and models,
; which live in %LOCALAPPDATA%\hanlin, not in the program folder.
; Uninstalling keeps them too unless the user says so (asked, default No; a silent
; uninstall deletes them only with /PURGE).

#ifndef AppVersion
  #define AppVersion "0.1.0"
#endif
#ifndef Backend
  #define Backend "cpu"
#endif
#ifndef SourceDir
  #define SourceDir "..\..\dist\hanlin"
#endif
#ifndef OutputDir
  #define OutputDir "..\..\dist"
#endif

[Setup]
; the AppId is Hanlin's identity for upgrades and the uninstaller: never change it
AppId={{8C9D2F4E-6B1A-4E7C-9A35-1F0B7D2C4E61}
AppName=Hanlin
AppVersion={#AppVersion}
AppVerName=Hanlin {#AppVersion} ({#Backend})
AppPublisher=Hanlin
AppComments=A local, private workbench for open-weight Qwen and DeepSeek models
DefaultDirName={autopf}\Hanlin
DefaultGroupName=Hanlin
DisableProgramGroupPage=yes
PrivilegesRequired=lowest
PrivilegesRequiredOverridesAllowed=dialog
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
MinVersion=10.0
OutputDir={#OutputDir}
OutputBaseFilename=Hanlin-{#AppVersion}-windows-amd64-{#Backend}-setup
SetupIconFile=hanlin.ico
UninstallDisplayIcon={app}\hanlin-app.exe
UninstallDisplayName=Hanlin
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
ChangesAssociations=yes
ChangesEnvironment=yes
CloseApplications=yes
RestartApplications=no

[Tasks]
Name: "addtopath"; Description: "Add &hanlin and hanlin-lsp to PATH (terminals and editors find them)"
Name: "ggufassoc"; Description: "Open .&gguf model files with Hanlin"
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[InstallDelete]
; the runtime of an older version must not mix with this one's
Type: filesandordirs; Name: "{app}\_internal"
Type: filesandordirs; Name: "{app}\editors"

[Files]
Source: "{#SourceDir}\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\Hanlin"; Filename: "{app}\hanlin-app.exe"; WorkingDir: "{userdocs}"
Name: "{group}\Hanlin doctor"; Filename: "{cmd}"; Parameters: "/k ""{app}\hanlin.exe"" doctor"; WorkingDir: "{userdocs}"; Comment: "What this PC can run, and the GPU build it could use"
Name: "{group}\Editor integrations"; Filename: "{app}\editors"; Comment: "VS Code extension, JetBrains template, Neovim config"
Name: "{group}\{cm:UninstallProgram,Hanlin}"; Filename: "{uninstallexe}"
Name: "{autodesktop}\Hanlin"; Filename: "{app}\hanlin-app.exe"; WorkingDir: "{userdocs}"; Tasks: desktopicon

[Registry]
; .gguf -> Hanlin (HKA: the current user's classes, or the machine's for all users)
Root: HKA; Subkey: "Software\Classes\.gguf\OpenWithProgids"; ValueType: string; ValueName: "Hanlin.gguf"; ValueData: ""; Flags: uninsdeletevalue; Tasks: ggufassoc
Root: HKA; Subkey: "Software\Classes\Hanlin.gguf"; ValueType: string; ValueName: ""; ValueData: "GGUF model"; Flags: uninsdeletekey; Tasks: ggufassoc
Root: HKA; Subkey: "Software\Classes\Hanlin.gguf\DefaultIcon"; ValueType: string; ValueName: ""; ValueData: """{app}\hanlin-app.exe"",0"; Tasks: ggufassoc
Root: HKA; Subkey: "Software\Classes\Hanlin.gguf\shell\open\command"; ValueType: string; ValueName: ""; ValueData: """{app}\hanlin-app.exe"" ""%1"""; Tasks: ggufassoc
Root: HKA; Subkey: "Software\Classes\Applications\hanlin-app.exe\SupportedTypes"; ValueType: string; ValueName: ".gguf"; ValueData: ""; Flags: uninsdeletekey; Tasks: ggufassoc

[Run]
Filename: "{app}\hanlin-app.exe"; Description: "{cm:LaunchProgram,Hanlin}"; Flags: nowait postinstall skipifsilent

[Code]
const
  UserEnvKey = 'Environment';
  MachineEnvKey = 'SYSTEM\CurrentControlSet\Control\Session Manager\Environment';

function EnvRoot: Integer;
begin
  if IsAdminInstallMode then Result := HKEY_LOCAL_MACHINE else Result := HKEY_CURRENT_USER;
end;

function EnvKey: String;
begin
  if IsAdminInstallMode then Result := MachineEnvKey else Result := UserEnvKey;
end;

function PathHas(Paths, Dir: String): Boolean;
begin
  Result := Pos(';' + Uppercase(Dir) + ';', ';' + Uppercase(Paths) + ';') > 0;
end;

procedure AddToPath(Dir: String);
var
  Paths: String;
begin
  if not RegQueryStringValue(EnvRoot, EnvKey, 'Path', Paths) then Paths := '';
  if PathHas(Paths, Dir) then exit;
  if (Paths <> '') and (Paths[Length(Paths)] <> ';') then Paths := Paths + ';';
  RegWriteExpandStringValue(EnvRoot, EnvKey, 'Path', Paths + Dir);
end;

procedure RemoveFromPath(Dir: String);
var
  Paths: String;
  P: Integer;
begin
  if not RegQueryStringValue(EnvRoot, EnvKey, 'Path', Paths) then exit;
  Paths := ';' + Paths + ';';
  P := Pos(';' + Uppercase(Dir) + ';', Uppercase(Paths));
  if P = 0 then exit;
  Delete(Paths, P, Length(Dir) + 1);
  Paths := Copy(Paths, 2, Length(Paths) - 2);
  RegWriteExpandStringValue(EnvRoot, EnvKey, 'Path', Paths);
end;

procedure CurStepChanged(CurStep: TSetupStep);
begin
  if (CurStep = ssPostInstall) and WizardIsTaskSelected('addtopath') then
    AddToPath(ExpandConstant('{app}'));
end;

function UserDataDir: String;
begin
  // platformdirs on Windows: settings, history, models, logs and cache all live here
  Result := ExpandConstant('{localappdata}\hanlin');
end;

function WantsPurge: Boolean;
var
  I: Integer;
begin
  Result := False;
  for I := 1 to ParamCount do
    if CompareText(ParamStr(I), '/PURGE') = 0 then Result := True;
  if (not Result) and (not UninstallSilent) and DirExists(UserDataDir) then
    Result := MsgBox('Also delete your Hanlin settings, chat history and downloaded models?' + #13#10 + #13#10 +
      UserDataDir + #13#10 + #13#10 +
      'Choose No to keep them for a later install (recommended).',
      mbConfirmation, MB_YESNO or MB_DEFBUTTON2) = IDYES;
end;

procedure CurUninstallStepChanged(CurUninstallStep: TUninstallStep);
begin
  if CurUninstallStep = usUninstall then
    RemoveFromPath(ExpandConstant('{app}'));
  if (CurUninstallStep = usPostUninstall) and WantsPurge then
    DelTree(UserDataDir, True, True, True);
end;
